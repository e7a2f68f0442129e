// Staff savings chart (admin → Usage records → Savings by day): reference API cost and compute cost as
// bars, what was saved as a line. The figures come from the page (json_script), the same ones as the table.
(function () {
  "use strict";

  function draw() {
    const source = document.getElementById("savings-data");
    const canvas = document.getElementById("savings-chart");
    if (!source || !canvas || typeof window.Chart !== "function") return;
    const data = JSON.parse(source.textContent);
    const dollars = (value) => "$" + Number(value).toFixed(value >= 10 ? 0 : 2);
    const styles = getComputedStyle(document.documentElement);
    const primary = styles.getPropertyValue("--primary").trim() || "#3340c2";
    const text = styles.getPropertyValue("--body-fg").trim() || "#333";

    canvas.dataset.ready = "false";
    new window.Chart(canvas, {
      data: {
        labels: data.days,
        datasets: [
          { type: "bar", label: "At API prices", data: data.reference_cost, backgroundColor: "#c9cfff" },
          { type: "bar", label: "Run here", data: data.compute_cost, backgroundColor: "#8a90a6" },
          { type: "line", label: "Saved", data: data.saved, borderColor: primary, backgroundColor: primary,
            tension: 0.2, pointRadius: 3 },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { labels: { color: text } },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${dollars(item.parsed.y)}` } },
        },
        scales: {
          x: { ticks: { color: text } },
          y: { beginAtZero: true, ticks: { color: text, callback: dollars } },
        },
      },
    });
    canvas.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
