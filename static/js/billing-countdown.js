// Ticks the grace countdown down; the server's figure is the truth on reload.
// SPDX-License-Identifier: GPL-3.0-or-later
document.querySelectorAll("[data-countdown]").forEach(function (el) {
  var left = parseInt(el.dataset.secondsLeft, 10);
  function words(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), out = [];
    [[d, "day"], [h, "hour"], [m, "minute"]].forEach(function (p) { if (p[0]) out.push(p[0] + " " + p[1] + (p[0] === 1 ? "" : "s")); });
    return out.join(" ") || "less than a minute";
  }
  var started = Date.now();
  setInterval(function () {
    var now = Math.max(0, left - Math.floor((Date.now() - started) / 1000));
    el.textContent = words(now);
    if (now === 0) { window.location.reload(); }
  }, 15000);
});
