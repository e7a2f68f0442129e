from __future__ import annotations

from django import forms

from billing.clock import now


class TestCardForm(forms.Form):
    """Local mode only (the view refuses it elsewhere): one of Stripe's test card numbers."""

    number = forms.CharField(label="Card number", max_length=23,
                             help_text="A Stripe test card, such as 4242 4242 4242 4242.",
                             widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))
    exp_month = forms.IntegerField(label="Expiry month", min_value=1, max_value=12, initial=12)
    exp_year = forms.IntegerField(label="Expiry year", min_value=2000, max_value=2099)
    cvc = forms.RegexField(label="CVC", regex=r"^\d{3}$", max_length=3, initial="123",
                           error_messages={"invalid": "The CVC is the 3 digits on the back of the card."})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["exp_year"].initial = now().year + 3


class CheckoutForm(forms.Form):
    agree = forms.BooleanField(
        label="I agree to these terms", required=False,
    )
    terms_version = forms.CharField(widget=forms.HiddenInput)


class RefundForm(forms.Form):
    amount = forms.DecimalField(label="Amount in dollars (empty: everything refundable)", required=False,
                                min_value=0.01, decimal_places=2)
    reason = forms.CharField(max_length=300, required=False)


class CadenceForm(forms.Form):
    interval_days = forms.IntegerField(label="Days between installments", min_value=1, max_value=90)
