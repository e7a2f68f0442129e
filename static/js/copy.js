// Buttons with data-copy="element-id" copy that element's text to the clipboard and say so. They
// start hidden (no script, no button), since without the Clipboard API the text is still selectable.
// SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source) { return; }
    var label = button.querySelector("span") || button;
    var original = label.textContent;
    var status = document.createElement("span");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    button.after(status);
    button.hidden = false;

    function done(message) {
      label.textContent = message;
      status.textContent = message;
      window.setTimeout(function () { label.textContent = original; status.textContent = ""; }, 2500);
    }

    button.addEventListener("click", function () {
      var text = source.textContent.trim();
      // The Clipboard API needs a secure context (HTTPS or localhost); elsewhere the text is
      // selected so Ctrl+C / long-press copies it.
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () {
          done(button.dataset.copied || "Copied");
        }, function () {
          selectText(source);
          done("Selected: press Ctrl+C");
        });
      } else {
        selectText(source);
        done("Selected: press Ctrl+C");
      }
    });
  });
})();
