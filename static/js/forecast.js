/*
 * Forecast page: while a manager types a call, show its adjustment against the roll-up
 * of the level below (the roll-up comes from data attributes of the form; no inline code).
 */
(function () {
  "use strict";

  function format(value) {
    var sign = value > 0 ? "+" : value < 0 ? "-" : "";
    return sign + Math.abs(value).toLocaleString(undefined, {
      minimumFractionDigits: 2,
      maximumFractionDigits: 2,
    });
  }

  function wire(form) {
    var rollups = {
      commit: parseFloat(form.getAttribute("data-rollup-commit")),
      best_case: parseFloat(form.getAttribute("data-rollup-best")),
    };
    Object.keys(rollups).forEach(function (name) {
      var input = form.querySelector('input[name="' + name + '"]');
      var note = form.querySelector('[data-adjust="' + name + '"]');
      if (!input || !note || isNaN(rollups[name])) {
        return;
      }
      var base = note.textContent;
      function update() {
        var value = parseFloat(input.value);
        note.textContent = isNaN(value)
          ? base
          : base + " \u00b7 adjustment " + format(value - rollups[name]);
      }
      input.addEventListener("input", update);
      update();
    });
  }

  function init() {
    var forms = document.querySelectorAll("form[data-rollup-commit]");
    for (var i = 0; i < forms.length; i += 1) {
      wire(forms[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
