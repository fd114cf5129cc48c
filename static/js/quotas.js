// Quota planning grid: live row, column and gap totals while typing. The page works
// without this script (the server computes every total on save); it only saves a round trip.
(function () {
  "use strict";
  var form = document.getElementById("quota-grid");
  // A read-only plan has no inputs: its totals are the server's and stay as they are.
  if (!form || !form.querySelector("input.qp-input")) { return; }

  // Cents as integers, so 0.1 + 0.2 is exactly 0.30 on screen as it is on the server.
  function cents(text) {
    var cleaned = String(text || "").replace(/[,\s\u00a0]/g, "");
    if (cleaned === "" || !/^\d+(\.\d{0,2})?$/.test(cleaned)) { return null; }
    var parts = cleaned.split(".");
    var fraction = ((parts[1] || "") + "00").slice(0, 2);
    return parseInt(parts[0], 10) * 100 + parseInt(fraction, 10);
  }

  function money(value) {
    var negative = value < 0;
    var abs = Math.abs(value);
    var whole = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var fraction = ("0" + (abs % 100)).slice(-2);
    return (negative ? "-" : "") + whole + "." + fraction;
  }

  function setCell(el, value) {
    if (el) { el.textContent = value; }
  }

  function recompute() {
    var columns = {};
    var grand = 0;
    form.querySelectorAll("tbody tr[data-row]").forEach(function (row) {
      var total = 0;
      row.querySelectorAll("input[data-col]").forEach(function (input) {
        var value = cents(input.value);
        input.classList.toggle("qp-invalid", value === null && input.value.trim() !== "");
        var col = input.getAttribute("data-col");
        columns[col] = (columns[col] || 0) + (value || 0);
        total += value || 0;
      });
      setCell(row.querySelector("[data-row-total]"), money(total));
      grand += total;
    });
    var ownTotal = 0;
    var gapSum = 0;
    var ownAny = false;
    form.querySelectorAll("input[data-own-col]").forEach(function (input) {
      var col = input.getAttribute("data-own-col");
      var value = cents(input.value);
      input.classList.toggle("qp-invalid", value === null && input.value.trim() !== "");
      var columnTotal = columns[col] || 0;
      setCell(form.querySelector('[data-col-total="' + col + '"]'), money(columnTotal));
      var gapCell = form.querySelector('[data-gap="' + col + '"]');
      if (value === null) {
        setCell(gapCell, "\u2014");
        if (gapCell) { gapCell.classList.remove("qp-gap"); }
      } else {
        ownAny = true;
        ownTotal += value;
        gapSum += value - columnTotal;
        setCell(gapCell, money(value - columnTotal));
        if (gapCell) { gapCell.classList.toggle("qp-gap", value !== columnTotal); }
      }
    });
    setCell(form.querySelector("[data-own-total]"), money(ownTotal));
    setCell(form.querySelector("[data-grand-total]"), money(grand));
    var gapTotal = form.querySelector("[data-gap-total]");
    if (gapTotal) {
      // Only months with a top-down target have a gap, as on the server.
      setCell(gapTotal, ownAny ? money(gapSum) : "\u2014");
      gapTotal.classList.toggle("qp-gap", ownAny && gapSum !== 0);
    }
  }

  form.addEventListener("input", recompute);
  recompute();
})();
