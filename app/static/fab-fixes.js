// Fixes to Flask-AppBuilder's own scripts, loaded after them on every page.
(function ($) {
  "use strict";
  // FAB's search filters start a date column's picker with $.fn.datetimepicker, which the
  // bootstrap-datepicker it ships does not define: adding the filter threw a TypeError.
  // Start it as FAB's forms do theirs (ab.js).
  if ($ && $.fn.datepicker && !$.fn.datetimepicker) {
    $.fn.datetimepicker = function (options) {
      return this.datepicker($.extend({ format: "yyyy-mm-dd" }, options));
    };
  }
})(window.jQuery);

// A table that scrolls sideways (a phone, a wide report) takes the keyboard focus, so that it can
// be scrolled with the arrow keys (WCAG 2.1.1); a table that fits takes none.
(function () {
  "use strict";
  function focusable() {
    var regions = document.querySelectorAll(".table-responsive");
    for (var i = 0; i < regions.length; i++) {
      var region = regions[i];
      if (region.scrollWidth > region.clientWidth + 1) {
        region.setAttribute("tabindex", "0");
        if (!region.hasAttribute("role")) {
          region.setAttribute("role", "region");
          var table = region.querySelector("table");
          var name = table && (table.getAttribute("aria-label") || (table.caption && table.caption.textContent));
          region.setAttribute("aria-label", name || document.title);
        }
      } else if (region.getAttribute("tabindex") === "0") {
        region.removeAttribute("tabindex");
      }
    }
  }
  document.addEventListener("DOMContentLoaded", focusable);
  window.addEventListener("resize", focusable);
})();

// Select2 4.0.13 (FAB's multiple-choice fields) puts its "remove all" cross straight into a <ul>
// and leaves its search box without a name: on every redraw, wrap the cross in an <li> (its
// click handler is delegated, so it still works) and name the box after the field's label.
(function ($) {
  "use strict";
  if (!$ || !window.MutationObserver) {
    return;
  }
  function fix(root) {
    $(root).find("ul.select2-selection__rendered > .select2-selection__clear").each(function () {
      $(this).wrap("<li class=\"select2-clear-item\"></li>");
    });
    $(root).find(".select2-search__field:not([aria-label])").each(function () {
      var container = $(this).closest(".select2-container");
      var select = container.prev("select");
      var label = select.length && select.attr("id") ? $("label[for=\"" + select.attr("id") + "\"]").first().text() : "";
      $(this).attr("aria-label", $.trim(label) || $.trim(select.attr("name") || "") || "search");
    });
  }
  $(function () {
    fix(document.body);
    new MutationObserver(function (mutations) {
      for (var i = 0; i < mutations.length; i++) {
        if (mutations[i].addedNodes.length) {
          fix(mutations[i].target);
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
})(window.jQuery);
