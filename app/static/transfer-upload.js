// The transfer case page: upload the encrypted file with a progress bar (XMLHttpRequest PUT),
// then reload the page, which shows the outcome. Without JavaScript the form posts as usual.
(function () {
  "use strict";
  function send(form, input) {
    var box = form.querySelector(".progress"), bar = form.querySelector(".progress-bar"),
        err = form.querySelector(".upload-error"), button = form.querySelector("button");
    box.style.display = "block"; err.style.display = "none"; button.disabled = true;
    var xhr = new XMLHttpRequest();
    xhr.open("PUT", form.getAttribute("data-url"));
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("input[name=csrf_token]").value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", "application/pkcs7-mime");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        var pct = Math.floor(e.loaded * 100 / e.total);
        bar.style.width = pct + "%"; bar.textContent = pct + "%"; bar.setAttribute("aria-valuenow", pct);
      }
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
      if (xhr.status >= 200 && xhr.status < 300) { window.location = body.url || window.location.href; return; }
      err.textContent = body.message || ("HTTP " + xhr.status); err.style.display = "block";
      bar.className = "progress-bar progress-bar-danger"; button.disabled = false;
    };
    xhr.onerror = function () {
      err.textContent = form.getAttribute("data-lost");
      err.style.display = "block"; button.disabled = false;
    };
    xhr.send(input.files[0]);
  }
  var forms = document.querySelectorAll("form.transfer-upload");
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("submit", function (ev) {
      var input = form.querySelector("input[type=file]");
      if (!input.files.length || !window.XMLHttpRequest) { return; }
      ev.preventDefault();
      send(form, input);
    });
  });
})();
