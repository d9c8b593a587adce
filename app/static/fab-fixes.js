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
