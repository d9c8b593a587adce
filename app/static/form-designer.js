// The form designer (query/designer.html): choosing a section's source or target refreshes the
// page, which then offers what that source describes; the "open a form" list opens it.
// Without JavaScript the page works the same with its "Refresh" button.
(function () {
  "use strict";
  var form = document.getElementById("designer"), refresh = document.getElementById("designer-refresh");
  if (form && refresh) {
    Array.prototype.forEach.call(form.querySelectorAll("[data-refresh]"), function (field) {
      field.addEventListener("change", function () {
        if (form.requestSubmit) { form.requestSubmit(refresh); } else { refresh.click(); }
      });
    });
  }
  var open = document.getElementById("open-form-id");
  if (open) {
    open.addEventListener("change", function () {
      window.location = open.getAttribute("data-open") + (open.value || "");
    });
  }
})();
