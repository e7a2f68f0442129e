// Live and test mode only: the bank's confirmation of an off-session payment, through Stripe.js.
// SPDX-License-Identifier: GPL-3.0-or-later
(function () {
  var button = document.getElementById("auth-start");
  if (!button || typeof Stripe === "undefined") { return; }
  button.addEventListener("click", async function () {
    var stripe = Stripe(button.dataset.publishableKey);
    var result = await stripe.handleNextAction({clientSecret: button.dataset.clientSecret});
    if (result.error) { document.getElementById("auth-errors").textContent = result.error.message; return; }
    window.location = "?done=1";
  });
})();
