// Staff analytics dashboard: the visitors / page views line chart (previous period dashed) and the funnel's
// bar chart. Chart.js comes from npm (served from node_modules); the figures come from the page (json_script),
// the same ones as its tables. SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  "use strict";
  var source = document.getElementById("analytics-data");
  if (!source || typeof window.Chart !== "function") return;
  var data = JSON.parse(source.textContent);
  var reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var styles = getComputedStyle(document.documentElement);
  var primary = styles.getPropertyValue("--primary").trim() || "#3340c2";
  var visitors = "#0b6e66";

  function line(label, values, colour, dashed) {
    return { label: label, data: values, borderColor: colour, backgroundColor: colour, borderWidth: 2,
             borderDash: dashed ? [6, 4] : [], pointRadius: values.length > 60 ? 0 : 2, tension: 0.2 };
  }

  var series = document.getElementById("analytics-timeseries");
  if (series) {
    new window.Chart(series, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          line("Visitors", data.visitors, visitors, false),
          line("Page views", data.pageviews, primary, false),
          line("Visitors, previous period", data.previous_visitors, visitors, true),
          line("Page views, previous period", data.previous_pageviews, primary, true),
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: reduce ? false : undefined,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxRotation: 0, autoSkip: true } } },
        plugins: { legend: { labels: { boxWidth: 24 } } },
      },
    });
    series.dataset.ready = "true";
  }

  var funnel = document.getElementById("analytics-funnel");
  if (funnel && data.funnel) {
    new window.Chart(funnel, {
      type: "bar",
      data: { labels: data.funnel.labels,
              datasets: [{ label: "Users", data: data.funnel.users, backgroundColor: primary }] },
      options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: reduce ? false : undefined,
                 plugins: { legend: { display: false } },
                 scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    funnel.dataset.ready = "true";
  }
})();
