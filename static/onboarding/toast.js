// Badge toasts and the tour's completion celebration.
// SPDX-License-Identifier: GPL-3.0-or-later
import { postBody } from "./api.js";

const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

function region() {
  let el = document.getElementById("ob-toasts");
  if (!el) {
    el = document.createElement("div");
    el.id = "ob-toasts";
    el.className = "ob-toasts";
    el.setAttribute("role", "status");
    el.setAttribute("aria-live", "polite");
    document.body.append(el);
  }
  return el;
}

const ICONS = {
  chat: '<path d="M4 5h16a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1h-9l-5 4v-4H4a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1z"/><path d="M8 10h8M8 13h5"/>',
  target: '<circle cx="12" cy="12" r="9"/><circle cx="12" cy="12" r="5"/><circle cx="12" cy="12" r="1.5"/>',
  book: '<path d="M4 5a2 2 0 0 1 2-2h13v16H6a2 2 0 0 0-2 2z"/><path d="M4 21V5M9 7h6"/>',
  bolt: '<path d="M13 2 4 14h7l-1 8 9-12h-7z"/>',
  people: '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0"/><circle cx="17" cy="9" r="2.5"/><path d="M16 14a5 5 0 0 1 5.5 6"/>',
  medal: '<circle cx="12" cy="9" r="6"/><path d="M8.5 14 7 22l5-3 5 3-1.5-8"/>',
};

export function iconSvg(name) {
  // Our own fixed markup, chosen by name: nothing from the server is put into innerHTML.
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "ob-icon");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "1.8");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.innerHTML = ICONS[name] || ICONS.medal;
  return svg;
}

export function toast({ title, text, icon, timeout = 9000 }) {
  const item = document.createElement("div");
  item.className = "ob-toast";
  const body = document.createElement("div");
  body.className = "ob-toast__body";
  const strong = document.createElement("strong");
  strong.textContent = title;
  const p = document.createElement("p");
  p.textContent = text;
  body.append(strong, p);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "ob-toast__close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => item.remove());
  item.append(iconSvg(icon), body, close);
  region().append(item);
  if (timeout) setTimeout(() => item.remove(), timeout);
  return item;
}

const shown = new Set();
const SEEN_AFTER_MS = 1500;

export function badgeToasts(awards, { live = false } = {}) {
  const fresh = awards.filter((award) => !shown.has(award.id));
  if (!fresh.length) return;
  for (const award of fresh) {
    shown.add(award.id);
    const el = toast({ title: `Badge earned: ${award.name}`, text: award.description, icon: award.icon });
    el.dataset.badge = award.slug;
  }
  const count = document.querySelector(".ob-badges__count");
  const link = document.getElementById("ob-badges");
  if (count && link) {
    const earned = Number(count.textContent || 0) + fresh.length;
    count.textContent = String(earned);
    link.setAttribute("aria-label", `Badges: ${earned} earned`);
  }
  // Seen: the next page will not toast them again. Those listed by a page as it loads are seen at
  // once. One that arrives live is marked only once it has been on screen for a moment: it may arrive
  // while this page is being left (the form's POST that earned it), and then the next page, which
  // lists unseen awards, toasts it there.
  const ids = fresh.map((award) => award.id);
  const mark = () => postBody("/app/badges/seen/", { ids }).catch(() => {});
  if (live) setTimeout(mark, SEEN_AFTER_MS); else mark();
}

export function celebrate({ onReplay }) {
  if (document.getElementById("ob-celebrate")) return null;
  const dialog = document.createElement("dialog");
  dialog.id = "ob-celebrate";
  dialog.className = "ob-celebrate";
  dialog.setAttribute("aria-labelledby", "ob-celebrate-title");
  const confetti = document.createElement("div");
  confetti.className = "ob-confetti";
  confetti.setAttribute("aria-hidden", "true");
  if (!reducedMotion()) {
    for (let i = 0; i < 28; i += 1) {
      const piece = document.createElement("span");
      piece.style.setProperty("--x", `${Math.round(Math.random() * 100)}%`);
      piece.style.setProperty("--d", `${(Math.random() * 0.8).toFixed(2)}s`);
      piece.style.setProperty("--h", `${Math.round(Math.random() * 360)}`);
      confetti.append(piece);
    }
  }
  const title = document.createElement("h2");
  title.id = "ob-celebrate-title";
  title.textContent = "You finished the tour!";
  const text = document.createElement("p");
  text.textContent = "You have seen every corner of Parley. Your progress and badges are saved; replay the tour any time from your profile.";
  const actions = document.createElement("div");
  actions.className = "ob-celebrate__actions";
  const close = document.createElement("button");
  close.type = "button";
  close.className = "btn";
  close.textContent = "Close";
  close.addEventListener("click", () => dialog.close());
  const replay = document.createElement("button");
  replay.type = "button";
  replay.className = "btn btn--secondary";
  replay.textContent = "Replay the tour";
  replay.addEventListener("click", () => { dialog.close(); onReplay(); });
  actions.append(close, replay);
  dialog.append(confetti, title, text, actions);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
  return dialog;
}
