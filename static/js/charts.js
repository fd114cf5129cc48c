/*
 * Renders every Plotly figure of a dashboard page. A figure comes from the server as a
 * JSON data block (<script type="application/json" id="...">, made by json_script), which
 * never executes, so pages need no inline script under a strict Content-Security-Policy.
 * A chart element names its block with data-chart; clicking a point that carries a URL in
 * customdata opens the drill-down list behind it. The layout template all figures share
 * is not in each block but in js/plotly-template.js, loaded before this script.
 */
(function () {
  "use strict";

  function render(el) {
    var block = document.getElementById(el.getAttribute("data-chart"));
    if (!block || typeof Plotly === "undefined") {
      return;
    }
    var figure = JSON.parse(block.textContent);
    var layout = figure.layout || {};
    if (!layout.template && window.CSO_PLOTLY_TEMPLATE) {
      // Figures come without the template they share (js/plotly-template.js); each chart
      // gets its own copy of it, as it had when the template came with the figure.
      layout.template = JSON.parse(JSON.stringify(window.CSO_PLOTLY_TEMPLATE));
    }
    var isStatic = el.getAttribute("data-static") === "1";
    var config = { displayModeBar: false, responsive: true, staticPlot: isStatic };
    Plotly.newPlot(el, figure.data || [], layout, config).then(function () {
      el.setAttribute("data-rendered", "1");
    });
    if (!isStatic) {
      el.on("plotly_click", function (event) {
        var point = event && event.points && event.points[0];
        var url = point && point.customdata;
        if (typeof url === "string" && url.charAt(0) === "/") {
          window.location.assign(url);
        }
      });
    }
  }

  function renderAll() {
    var charts = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < charts.length; i += 1) {
      render(charts[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderAll);
  } else {
    renderAll();
  }
})();
