"""The profile: fields, an avatar resized on the server, completeness, and who may see the avatar."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import User, name_from_email
from accounts.selectors import profile_missing
from accounts.services import membership_add, profile_update
from accounts.tests.factories import user_make
from common.errors import ApplicationError
from knowledge.tests.factories import team_make
from onboarding.services import tour_start

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture(autouse=True)
def seeded(db) -> None:
    from onboarding.seed import onboarding_seed

    onboarding_seed()


def picture(width=900, height=600, fmt="PNG", name="me.png") -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format=fmt)
    return SimpleUploadedFile(name, out.getvalue(), content_type=f"image/{fmt.lower()}")


@pytest.mark.parametrize(("email", "name"), [
    ("someone+1@example.com", "Someone"), ("rosa.maria@example.com", "Rosa Maria"), ("j_doe42@x.org", "J Doe"),
    ("12345@example.com", "there"),
])
def test_a_friendlier_name_than_the_local_part(email, name):
    assert name_from_email(email) == name


def test_an_uploaded_avatar_is_cropped_to_a_square_webp_of_256(client):
    user = user_make()
    client.force_login(user)

    response = client.post("/app/profile/", {"name": "Pat", "avatar": picture(), "time_zone": "Europe/Paris",
                                             "email_digest": "weekly"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar_kind == "image" and user.avatar.name.endswith(".webp")
    with Image.open(user.avatar.path) as stored:
        assert stored.format == "WEBP" and stored.size == (256, 256)
    served = client.get(f"/app/avatars/{user.pk}/")
    assert served.status_code == 200 and served["Content-Type"] == "image/webp"


def test_a_file_that_is_not_a_picture_is_refused(client):
    user = user_make()
    client.force_login(user)
    fake = SimpleUploadedFile("me.png", b"%PDF-1.4 not an image", content_type="image/png")

    response = client.post("/app/profile/", {"avatar": fake})

    assert response.status_code == 400 and "not a picture Parley can read" in response.content.decode()
    user.refresh_from_db()
    assert not user.avatar


def test_bad_values_are_refused_with_clear_messages():
    user = user_make()
    for kwargs, code in (({"time_zone": "Mars/Olympus"}, "invalid_time_zone"),
                         ({"email_digest": "hourly"}, "invalid_digest"),
                         ({"avatar_kind": "image"}, "avatar_missing"),
                         ({"name": "x" * 151}, "name_too_long"),
                         ({"name": "Ro\x00sa"}, "control_character")):
        with pytest.raises(ApplicationError) as caught:
            profile_update(user=user, **kwargs)
        assert caught.value.code == code


def test_completing_the_profile_completes_its_tour_step():
    user = user_make()
    tour_start(user=user)
    assert profile_missing(user=user) == ["name", "avatar", "time_zone", "email_digest"]

    profile_update(user=user, name="Pat", avatar_kind=User.AvatarKind.INITIALS)
    assert "profile" not in user.journey.completed_steps
    profile_update(user=user, time_zone="Asia/Tokyo", email_digest="never")

    user.journey.refresh_from_db()
    assert profile_missing(user=user) == [] and "profile" in user.journey.completed_steps


def test_the_profile_page_says_what_is_missing_and_offers_to_resume_a_skipped_tour(client):
    user = user_make()
    client.force_login(user)
    client.post("/app/tour/skip/")

    body = client.get("/app/profile/").content.decode()

    assert "0% complete" in body and "your time zone" in body
    assert 'action="/app/tour/resume/"' in body and "Resume the tour" in body


def test_avatars_are_visible_to_teammates_only(client):
    owner, teammate, stranger = user_make(), user_make(), user_make()
    team = team_make(owner=owner)
    membership_add(team=team, user=teammate)
    profile_update(user=owner, avatar_upload=picture(fmt="JPEG", name="me.jpg"))

    client.force_login(teammate)
    assert client.get(f"/app/avatars/{owner.pk}/").status_code == 200
    client.force_login(stranger)
    assert client.get(f"/app/avatars/{owner.pk}/").status_code == 404


def test_a_name_with_a_nul_byte_from_the_welcome_form_is_refused_and_the_old_one_kept(client):
    user = user_make(name="Rosa")
    client.force_login(user)

    response = client.post("/app/profile/name/", {"name": "a\x00b"}, follow=True)

    assert response.status_code == 200
    assert "control character (NUL)" in response.content.decode()
    user.refresh_from_db()
    assert user.name == "Rosa"
