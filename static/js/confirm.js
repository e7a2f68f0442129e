// Forms with data-confirm="question" ask before they submit (instead of inline onsubmit handlers,
// which the Content Security Policy forbids). SPDX-License-Identifier: GPL-3.0-or-later
document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
});
