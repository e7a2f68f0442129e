// Live and test mode only: Stripe Elements collects the card, so its number never reaches Parley.
// Settings come from data attributes on #card-element (no inline script: the CSP forbids them).
// SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  var mount = document.getElementById("card-element");
  if (!mount || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(mount.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount(mount);
  var errors = document.getElementById("card-errors");
  document.getElementById("card-save").addEventListener("click", async function () {
    var response = await fetch(mount.dataset.setupUrl, {
      method: "POST", headers: {"X-CSRFToken": mount.dataset.csrfToken}, credentials: "same-origin"});
    var body = await response.json();
    if (!response.ok) { errors.textContent = body.error.message; return; }
    var result = await stripe.confirmCardSetup(body.client_secret, {payment_method: {card: card}});
    if (result.error) { errors.textContent = result.error.message; return; }
    window.location = mount.dataset.doneUrl + "?setup_intent=" + encodeURIComponent(result.setupIntent.id)
      + "&next=" + encodeURIComponent(mount.dataset.next || "");
  });
})();
