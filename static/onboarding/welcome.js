// The welcome screen's figures, kept current by `welcome.stats` events (a reply finished, a
// document became ready, the models online changed). SPDX-License-Identifier: GPL-3.0-or-later
import { onLive } from "./live.js";

const format = new Intl.NumberFormat();

onLive("welcome.stats", (figures) => {
  for (const [name, value] of Object.entries(figures)) {
    const el = document.querySelector(`[data-stat="${CSS.escape(name)}"]`);
    if (!el) continue;
    if (Array.isArray(value)) el.textContent = value.length ? `: ${value.join(", ")}` : "";
    else el.textContent = format.format(value);
    el.closest(".ob-stat")?.classList.add("ob-stat--updated");
  }
});
