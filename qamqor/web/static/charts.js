// Draw every Plotly figure of the page: <div class="chart" data-figure="ID"> with its JSON in
// <script type="application/json" id="ID">. Runs again after HTMX swaps.
function qamqorCharts(root) {
  (root || document).querySelectorAll(".chart[data-figure]").forEach(function (div) {
    if (div.dataset.drawn) return;
    var fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
    Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
    div.dataset.drawn = "1";
  });
}
document.addEventListener("DOMContentLoaded", function () { qamqorCharts(); });
document.addEventListener("htmx:afterSettle", function (e) { qamqorCharts(e.target); });
