// The page shell's behaviour, on every page.
// 1. The header's disclosures: the phone menu button and the account menu. Each toggle is a
//    <button data-disclosure aria-controls="panel-id" aria-expanded>. Escape closes the open ones and
//    returns focus to their button; a click elsewhere closes them. Loaded in <head> without defer so
//    <html class="js"> is set before the first paint: without JavaScript the panels simply stay open.
// 2. Tables that scroll sideways in their .table-wrap (on a phone), and code blocks that do, become
//    focusable, so a keyboard user can scroll them too (WCAG 2.1.1; axe-core's scrollable-region-focusable).
//    Content added later by a page's own script is not covered.
// SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function panelOf(button) {
    return document.getElementById(button.getAttribute("aria-controls"));
  }

  function setOpen(button, open) {
    var panel = panelOf(button);
    if (!panel) { return; }
    button.setAttribute("aria-expanded", open ? "true" : "false");
    panel.classList.toggle("is-open", open);
  }

  function openToggles() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-disclosure][aria-expanded='true']"));
  }

  function labelScrollers() {
    document.querySelectorAll(".table-wrap, pre").forEach(function (wrap) {
      var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      if (scrolls && wrap.tagName === "PRE") {
        // A code block: focusable is enough, its text is its content.
        if (!wrap.hasAttribute("tabindex")) { wrap.setAttribute("tabindex", "0"); }
        return;
      }
      if (scrolls && !wrap.hasAttribute("tabindex")) {
        var table = wrap.querySelector("table");
        var caption = table && table.caption;
        var section = wrap.closest("section, .card");
        var heading = caption || (section && section.querySelector("h2, h3"));
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", (heading ? heading.textContent.trim() + ": " : "") + "table, scrolls sideways");
        wrap.dataset.scrollRegion = "";
      } else if (!scrolls && wrap.dataset.scrollRegion !== undefined) {
        ["tabindex", "role", "aria-label", "data-scroll-region"].forEach(function (name) { wrap.removeAttribute(name); });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    labelScrollers();
    var resizing = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizing);
      resizing = window.setTimeout(labelScrollers, 150);
    });

    document.querySelectorAll("[data-disclosure]").forEach(function (button) {
      button.addEventListener("click", function () {
        setOpen(button, button.getAttribute("aria-expanded") !== "true");
      });
    });

    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") { return; }
      // Close the innermost open panel that holds the focus (the account menu inside the phone
      // menu), or every open one if the focus is elsewhere.
      var open = openToggles();
      var holding = open.filter(function (button) {
        var panel = panelOf(button);
        return panel && (panel.contains(document.activeElement) || button === document.activeElement);
      });
      var targets = holding.length ? [holding[holding.length - 1]] : open;
      targets.forEach(function (button) { setOpen(button, false); });
      if (targets.length) { targets[0].focus(); }
    });

    document.addEventListener("click", function (event) {
      openToggles().forEach(function (button) {
        var panel = panelOf(button);
        if (!button.contains(event.target) && panel && !panel.contains(event.target)) {
          setOpen(button, false);
        }
      });
    });

    // Menus work from here on: scripts that open one (the tour, for a step inside it) wait for this.
    document.documentElement.dataset.shell = "ready";
    document.dispatchEvent(new CustomEvent("parley:shell-ready"));
  });
})();
