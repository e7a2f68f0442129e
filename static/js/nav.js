// The header's disclosures: the phone menu button and the account menu. Each toggle is a
// <button data-disclosure aria-controls="panel-id" aria-expanded>. Escape closes the open ones and
// returns focus to their button; a click elsewhere closes them. Loaded in <head> without defer so
// <html class="js"> is set before the first paint: without JavaScript the panels simply stay open.
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

  document.addEventListener("DOMContentLoaded", function () {
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
  });
})();
