"""Input of the sign-up's extra field and the profile page."""

from __future__ import annotations

import zoneinfo

from django import forms

from accounts.models import User


class SignupNameForm(forms.Form):
    """allauth's sign-up form gains an optional display name (ACCOUNT_SIGNUP_FORM_CLASS)."""

    name = forms.CharField(label="Your name", max_length=150, required=False,
                           help_text="How Parley greets you. You can change it later.",
                           widget=forms.TextInput(attrs={"autocomplete": "name"}))

    def signup(self, request, user: User) -> None:
        # The adapter's save_user already stored it; allauth calls this hook regardless.
        pass


def time_zone_choices() -> list[tuple[str, str]]:
    return [("", "Choose your time zone")] + [(name, name.replace("_", " "))
                                               for name in sorted(zoneinfo.available_timezones())]


class ProfileForm(forms.Form):
    name = forms.CharField(label="Display name", max_length=150, required=False)
    avatar_kind = forms.ChoiceField(label="Avatar", choices=User.AvatarKind.choices, required=False,
                                    widget=forms.RadioSelect)
    avatar = forms.FileField(label="Picture", required=False,
                             help_text="JPEG, PNG, WebP or GIF up to 8 MB; cropped to a square.")
    time_zone = forms.ChoiceField(label="Time zone", choices=time_zone_choices, required=False)
    email_digest = forms.ChoiceField(label="Email digest", choices=User.Digest.choices, required=False,
                                     widget=forms.RadioSelect,
                                     help_text="A summary of your chats and documents by email.")
