// Profile page: suggest the browser's time zone while none is chosen, and choosing a picture
// selects "A picture". SPDX-License-Identifier: GPL-3.0-or-later
const zone = document.querySelector("select[data-browser-zone][data-empty]");
if (zone) {
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (browser && [...zone.options].some((option) => option.value === browser)) zone.value = browser;
}
const file = document.getElementById("profile-avatar");
file?.addEventListener("change", () => {
  const image = document.querySelector("input[name=avatar_kind][value=image]");
  if (file.files.length && image) image.checked = true;
});
