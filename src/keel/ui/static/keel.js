/* Keel web UI: progressive enhancement only. Every page reads without this file.
 * Charts: each <div class="chart" data-chart="ID"> names a <script type="application/json" id="ID">
 * data block ({x, series: [{label, color, values}], xlabels?}) computed (and downsampled) on the
 * server; uPlot draws it. Run names are never put into HTML here (the legend is server-rendered).
 */
(function () {
  "use strict";
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];

  function drawChart(el) {
    if (el.getAttribute("data-drawn") === "1" || typeof window.uPlot === "undefined") { return; }
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    var data = [spec.x];
    var series = [{}];
    spec.series.forEach(function (s) {
      data.push(s.values);
      series.push({ label: "series " + series.length, stroke: PALETTE[s.color % PALETTE.length],
        width: 1.5, spanGaps: true, points: { show: false } });
    });
    var axes = [{}, {}];
    if (spec.xlabels) {
      axes[0] = { values: function (u, ticks) { return ticks.map(function (t) { return spec.xlabels[t] || ""; }); } };
    }
    el.textContent = "";
    el.setAttribute("data-drawn", "1");
    var width = Math.max(el.clientWidth, 300);
    new window.uPlot({ width: width, height: 260, legend: { show: false }, series: series,
      axes: axes, scales: { x: { time: false } }, cursor: { drag: { x: true, y: false } } }, data, el);
  }

  function drawAll(root) {
    var charts = (root || document).querySelectorAll("div.chart[data-chart]");
    charts.forEach(drawChart);
    if (charts.length && window.performance && performance.mark) { performance.mark("keel:charts"); }
  }

  function limitCompare(root) {
    (root || document).querySelectorAll("form.compare-form").forEach(function (form) {
      var max = parseInt(form.getAttribute("data-max"), 10) || 20;
      var note = form.querySelector(".limit-note");
      form.addEventListener("change", function (event) {
        var ticked = form.querySelectorAll("input[name=run]:checked");
        if (ticked.length > max && event.target.checked) { event.target.checked = false; }
        if (note) { note.hidden = form.querySelectorAll("input[name=run]:checked").length < max; }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); limitCompare(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); limitCompare(event.target); });
})();
