"""Writes for the profile: display name, avatar, time zone and the email digest preference.

An uploaded avatar is decoded with Pillow, cropped to a square and resized to AVATAR_SIZE on the
server, and stored as WebP: the browser never receives the original file (with its metadata),
and a decompression bomb or a file that only claims to be an image is refused.
"""

from __future__ import annotations

import io
import secrets
import zoneinfo

from django.core.files.base import ContentFile
from django.db import transaction

from accounts.models import User
from accounts.selectors import profile_missing
from common.errors import ApplicationError
from common.text import control_character_find
from onboarding.services import Event, event_record

AVATAR_SIZE = 256
AVATAR_MAX_BYTES = 8 * 1024 * 1024
AVATAR_MAX_PIXELS = 40_000_000
AVATAR_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}


def _avatar_image(upload) -> bytes:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if upload.size > AVATAR_MAX_BYTES:
        raise ApplicationError(f"That picture is {upload.size / 1024 / 1024:.1f} MB; the limit is "
                               f"{AVATAR_MAX_BYTES // 1024 // 1024} MB.", code="avatar_too_large")
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            if image.format not in AVATAR_FORMATS:
                raise ApplicationError("Use a JPEG, PNG, WebP or GIF picture.", code="avatar_format")
            if image.width * image.height > AVATAR_MAX_PIXELS:
                raise ApplicationError("That picture has too many pixels; use one under 40 megapixels.",
                                       code="avatar_too_large")
            image.seek(0)
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise ApplicationError("That file is not a picture Parley can read. Use a JPEG, PNG, WebP or GIF.",
                               code="avatar_unreadable")
    picture = ImageOps.fit(picture, (AVATAR_SIZE, AVATAR_SIZE), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="WEBP", quality=85)
    return out.getvalue()


@transaction.atomic
def profile_update(
    *, user: User, name: str | None = None, time_zone: str | None = None, email_digest: str | None = None,
    avatar_kind: str | None = None, avatar_upload=None,
) -> User:
    """Change the given fields (None leaves one as it is). A complete profile completes its tour step."""
    fields: list[str] = []
    if name is not None:
        if (char := control_character_find(name)) is not None:
            shown = "NUL" if char == "\x00" else f"U+{ord(char):04X}"
            raise ApplicationError(f"The name contains a control character ({shown}); remove it and try again.",
                                   code="control_character")
        name = " ".join(name.split())
        if len(name) > 150:
            raise ApplicationError("Names are at most 150 characters.", code="name_too_long")
        user.name = name
        fields.append("name")
    if time_zone is not None:
        if time_zone and time_zone not in zoneinfo.available_timezones():
            raise ApplicationError(f"{time_zone!r} is not a time zone Parley knows; pick one from the list.",
                                   code="invalid_time_zone")
        user.time_zone = time_zone
        fields.append("time_zone")
    if email_digest is not None:
        if email_digest not in User.Digest.values:
            raise ApplicationError("Choose never, daily or weekly for the email digest.", code="invalid_digest")
        user.email_digest = email_digest
        fields.append("email_digest")
    old_avatar = user.avatar.name if user.avatar else ""
    if avatar_upload is not None:
        data = _avatar_image(avatar_upload)
        user.avatar.save(f"{user.pk}-{secrets.token_hex(6)}.webp", ContentFile(data), save=False)
        user.avatar_kind = User.AvatarKind.IMAGE
        fields += ["avatar", "avatar_kind"]
    elif avatar_kind is not None:
        if avatar_kind not in User.AvatarKind.values:
            raise ApplicationError("Choose your initials or a picture.", code="invalid_avatar")
        if avatar_kind == User.AvatarKind.IMAGE and not user.avatar:
            raise ApplicationError("Choose a picture to upload, or use your initials.", code="avatar_missing")
        user.avatar_kind = avatar_kind
        fields.append("avatar_kind")
    if fields:
        user.save(update_fields=fields)
    if old_avatar and user.avatar.name != old_avatar:
        transaction.on_commit(lambda: user.avatar.storage.delete(old_avatar))
    if not profile_missing(user=user):  # every save of a complete profile, so a replayed tour sees it too
        event_record(user_id=user.pk, name=Event.PROFILE_COMPLETED)
    return user
