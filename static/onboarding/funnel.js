// Admin's onboarding funnel: two Chart.js charts (chart.js from npm, served from node_modules)
// over the figures the page renders as JSON. SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ob-funnel-data").textContent);
  var reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  Chart.defaults.animation = reduce ? false : Chart.defaults.animation;
  new Chart(document.getElementById("ob-funnel-chart"), {
    type: "bar",
    data: { labels: data.labels, datasets: [{ label: "Users", data: data.users, backgroundColor: "#3340c2" }] },
    options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } },
               scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  new Chart(document.getElementById("ob-cohort-chart"), {
    type: "line",
    data: {
      labels: data.cohorts.labels,
      datasets: [
        { label: "Sign-ups", data: data.cohorts.signups, borderColor: "#3340c2", backgroundColor: "#3340c2" },
        { label: "Finished the tour", data: data.cohorts.finished, borderColor: "#0b6e66", backgroundColor: "#0b6e66" },
        { label: "First chat", data: data.cohorts.first_chat, borderColor: "#b45309", backgroundColor: "#b45309" },
      ],
    },
    options: { responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
})();
