// Import job page: poll the job's progress endpoint until it finishes, then reload so the
// page shows the final counts and errors. No inline script: this file is loaded with src.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) { return; }
  var bar = box.querySelector("[data-role=bar]");
  var text = box.querySelector("[data-role=text]");
  var status = box.querySelector("[data-role=status]");
  var meter = box.querySelector("[role=progressbar]");
  // Which flag of the progress answer means "done": the import, or (while previewing a
  // large file) its background check.
  var doneFlag = box.getAttribute("data-done") || "finished";

  function show(percent) {
    bar.style.width = percent + "%";
    meter.setAttribute("aria-valuenow", String(percent));
  }
  show(Number(bar.getAttribute("data-percent")) || 0);
  if (box.getAttribute("data-finished") === "1") { return; }

  function poll() {
    fetch(box.getAttribute("data-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("progress " + response.status); }
        return response.json();
      })
      .then(function (data) {
        show(data.percent);
        text.textContent = data.percent + " % · " + data.phase;
        status.textContent = data.status;
        if (data[doneFlag]) { window.location.reload(); } else { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();
