"""Auth events that end a user's open sockets (common/sockets.py says why)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import User
from common.sockets import sockets_close


def _logged_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    # Read now: logout flushes the session right after this signal.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    sockets_close(user_id=user.pk, reason="logout", session_key=session_key or None)


def _user_saved(sender, instance: User, created: bool, update_fields=None, **kwargs) -> None:
    if created:
        return
    # AbstractBaseUser.set_password keeps the new raw password in `_password` until the save
    # that stores it has run: the one signal-free way to tell a password change from any save.
    password_changed = getattr(instance, "_password", None) is not None
    if update_fields is not None and not {"password", "is_active"} & set(update_fields) and not password_changed:
        return
    if password_changed or not instance.is_active:
        reason = "password_changed" if password_changed else "deactivated"
        user_id = instance.pk
        transaction.on_commit(lambda: sockets_close(user_id=user_id, reason=reason))


def _user_deleted(sender, instance: User, **kwargs) -> None:
    user_id = instance.pk
    transaction.on_commit(lambda: sockets_close(user_id=user_id, reason="deleted"))


def connect() -> None:
    user_logged_out.connect(_logged_out, dispatch_uid="accounts:sockets:logout")
    post_save.connect(_user_saved, sender=User, dispatch_uid="accounts:sockets:user_saved")
    post_delete.connect(_user_deleted, sender=User, dispatch_uid="accounts:sockets:user_deleted")
