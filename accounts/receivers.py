"""Auth events that end a user's open sockets (common/sockets.py says why), and writes that make the
processes' copies of API keys old (accounts.selectors)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import ApiKey, User
from accounts.selectors import APIKEYS
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


def _keys_changed(sender, instance, update_fields=None, **kwargs) -> None:
    # A key's scopes and limits, its user's is_active and is_staff: any change may change what a key
    # may do. A login's last_login stamp changes nothing a key relies on.
    if sender is User and update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    APIKEYS.changed()


def connect() -> None:
    for model in (ApiKey, User):
        post_save.connect(_keys_changed, sender=model, dispatch_uid=f"accounts:apikeys:saved:{model.__name__}")
        post_delete.connect(_keys_changed, sender=model, dispatch_uid=f"accounts:apikeys:deleted:{model.__name__}")
    user_logged_out.connect(_logged_out, dispatch_uid="accounts:sockets:logout")
    post_save.connect(_user_saved, sender=User, dispatch_uid="accounts:sockets:user_saved")
    post_delete.connect(_user_deleted, sender=User, dispatch_uid="accounts:sockets:user_deleted")
