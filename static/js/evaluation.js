// The S-7 evaluation pages: the quality-against-speed scatter (Chart.js from node_modules), live run progress
// from the page's notifications socket (static/onboarding/live.js re-dispatches its frames on `document` as
// `parley:live`), and the item form showing the chosen skill's fields.
// SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  "use strict";

  const COLOURS = ["#3340c2", "#0b6e66", "#b45309", "#9d174d", "#4d7c0f", "#6d28d9", "#0369a1", "#b42318"];

  // ------------------------------------------------------------------ the scatter

  function cssVar(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  // The 95% interval of each point's score, drawn under the points as a vertical bar with caps.
  const intervals = {
    id: "s7Intervals",
    beforeDatasetsDraw(chart) {
      const { ctx, scales } = chart;
      chart.data.datasets.forEach((dataset, index) => {
        if (!chart.isDatasetVisible(index)) return;
        dataset.data.forEach((point) => {
          const figures = point.figures;
          if (figures.ci_low === null || figures.ci_high === null) return;
          const x = scales.x.getPixelForValue(point.x);
          const low = scales.y.getPixelForValue(figures.ci_low);
          const high = scales.y.getPixelForValue(figures.ci_high);
          ctx.save();
          ctx.strokeStyle = dataset.borderColor;
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.moveTo(x, low);
          ctx.lineTo(x, high);
          ctx.moveTo(x - 5, low);
          ctx.lineTo(x + 5, low);
          ctx.moveTo(x - 5, high);
          ctx.lineTo(x + 5, high);
          ctx.stroke();
          ctx.restore();
        });
      });
    },
  };

  function drawScatter() {
    const source = document.getElementById("eval-points");
    const canvas = document.getElementById("eval-scatter");
    if (!source || !canvas || typeof window.Chart !== "function") return;
    const points = JSON.parse(source.textContent).filter((p) => p.score !== null && p.tokens_per_s !== null);
    const costs = points.map((p) => p.cost_per_1k).filter((c) => c !== null);
    const cheapest = Math.min(...costs);
    const dearest = Math.max(...costs);
    // Area grows with cost: the radius with its square root, from 6 px (cheapest) to 20 px (dearest).
    const radius = (cost) => (cost === null || !(dearest > cheapest)
      ? 9 : 6 + 14 * Math.sqrt((cost - cheapest) / (dearest - cheapest)));
    const text = cssVar("--c-text", "#161a24");
    const grid = cssVar("--c-border", "#d4d9e3");
    const datasets = points.map((p, index) => {
      const colour = COLOURS[index % COLOURS.length];
      return {
        label: p.model,
        data: [{ x: p.tokens_per_s, y: p.score, figures: p }],
        pointRadius: radius(p.cost_per_1k),
        pointHoverRadius: radius(p.cost_per_1k) + 2,
        backgroundColor: colour + "b3",
        borderColor: colour,
        borderWidth: 2,
      };
    });
    const top = Math.max(10, ...points.map((p) => p.tokens_per_s)) * 1.15;
    canvas.dataset.ready = "false";
    const chart = new window.Chart(canvas, {
      type: "scatter",
      data: { datasets },
      plugins: [intervals],
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        layout: { padding: { top: 8, right: 12 } },
        plugins: {
          legend: { position: "bottom", labels: { color: text, usePointStyle: true, boxWidth: 8 } },
          tooltip: {
            callbacks: {
              title: (items) => items[0].raw.figures.model,
              label: (item) => {
                const p = item.raw.figures;
                return [
                  `S-7 score ${fixed(p.score, 0)}% (95% interval ${fixed(p.ci_low, 0)}–${fixed(p.ci_high, 0)}%)`,
                  `${fixed(p.tokens_per_s, 1)} tokens/s, first token p50 ${fixed(p.ttft_p50_ms, 0)} ms`,
                  `$${fixed(p.cost_per_1k, 4)} per 1,000 requests (point size)`,
                ];
              },
            },
          },
        },
        scales: {
          x: {
            min: 0, suggestedMax: top,
            title: { display: true, text: "Speed: tokens/s (faster →)", color: text },
            ticks: { color: text }, grid: { color: grid },
          },
          y: {
            min: 0, max: 100,
            title: { display: true, text: "S-7 score (%)", color: text },
            ticks: { color: text, callback: (value) => value + "%" }, grid: { color: grid },
          },
        },
      },
    });
    canvas.dataset.ready = chart ? "true" : "false";
    canvas.dataset.points = String(points.length);
  }

  // ------------------------------------------------------------------ live progress

  const root = document.querySelector("[data-progress-event]");
  const EVENT = root ? root.dataset.progressEvent : null;

  function percentOf(data) {
    return data.total ? Math.round((100 * data.done) / data.total) : 100;
  }

  function progressShow(data) {
    document.querySelectorAll(`[data-run-progress="${data.run_id}"]`).forEach((box) => {
      const bar = box.querySelector("progress");
      const label = box.querySelector("[data-run-text]");
      box.dataset.status = data.status;
      if (bar) {
        bar.max = data.total || 1;
        bar.value = data.status === "done" ? bar.max : data.done;
      }
      if (!label) return;
      if (data.status === "done") {
        label.textContent = `Done: S-7 score ${data.score === null || data.score === undefined
          ? "–" : Math.round(data.score * 100) + "%"}`;
      } else if (data.status === "failed") {
        label.textContent = `Stopped after ${data.done} of ${data.total} items: ${data.error || "see the run"}`;
      } else {
        label.textContent = `${data.done} of ${data.total} items (${percentOf(data)}%)`;
      }
    });
  }

  // The run page: its body (progress, the model's card, the items) is the server's, fetched again when an item
  // is graded or the run ends. One fetch at a time; an event during one asks for one more afterwards.
  const body = document.getElementById("run-body");
  let fetching = false;
  let again = false;

  async function bodyRefresh() {
    if (!body) return;
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const response = await fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("run-body");
        if (fresh) {
          const open = [...body.querySelectorAll("details[open]")].map((d) => d.id);
          body.replaceChildren(...[...fresh.childNodes].map((node) => document.importNode(node, true)));
          body.dataset.status = fresh.dataset.status;
          open.forEach((id) => document.getElementById(id)?.setAttribute("open", ""));
        }
      }
    } catch {
      // Offline for a moment: the next event, or the socket's reopening, fetches again.
    } finally {
      fetching = false;
      if (again) { again = false; bodyRefresh(); }
    }
  }

  function onProgress(data) {
    if (!data || data.run_id === undefined) return;
    progressShow(data);
    if (body && String(data.run_id) === body.dataset.run) bodyRefresh();
  }

  // Events sent while the socket was closed (before this page's opened, or during a reconnect) are gone:
  // on every open, ask for the state of each run the page follows.
  function catchUp() {
    document.querySelectorAll("[data-run-progress]").forEach((box) => {
      if (box.dataset.status === "done" || box.dataset.status === "failed") return;
      fetch(box.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((data) => {
          if (!data) return;
          progressShow(data);
          if (body && String(data.run_id) === body.dataset.run) bodyRefresh();
        })
        .catch(() => {});
    });
  }

  if (EVENT) {
    document.addEventListener("parley:live", (event) => {
      if (event.detail.event === EVENT) onProgress(event.detail.data);
    });
    document.addEventListener("parley:live-open", catchUp);
  }

  // ------------------------------------------------------------------ the item form

  function itemFields() {
    const skill = document.getElementById("item-skill");
    const form = document.getElementById("item-form");
    if (!skill || !form) return;
    const show = () => {
      form.querySelectorAll("[data-skills]").forEach((el) => {
        const on = el.dataset.skills.split(" ").includes(skill.value);
        el.hidden = !on;
        // Hidden fields are not sent: the item is built from the chosen skill's fields only.
        el.querySelectorAll("input, textarea, select").forEach((input) => { input.disabled = !on; });
      });
    };
    skill.addEventListener("change", show);
    show();
  }

  function start() {
    drawScatter();
    itemFields();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
