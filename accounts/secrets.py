"""Secrets at rest: provider client secrets are stored encrypted, with a key outside the database.

The key is AMEIDE_SECRETS_KEY (any string; hashed to a Fernet key), or is derived from
SECRET_KEY with a fixed label. A database dump, or SQL that reads the column, gets ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

PREFIX = "fernet:"


def _fernet() -> Fernet:
    explicit = getattr(settings, "AMEIDE_SECRETS_KEY", "")
    if explicit:
        raw = hashlib.sha256(explicit.encode()).digest()
    else:
        raw = hmac.new(settings.SECRET_KEY.encode(), b"ameide.secrets.v1", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(raw))


def encrypt(value: str) -> str:
    if not value:
        return ""
    return PREFIX + _fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored or not stored.startswith(PREFIX):
        return stored or ""  # written before encryption existed; rewritten on next save
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ValueError(
            "A stored secret cannot be decrypted: AMEIDE_SECRETS_KEY (or SECRET_KEY) changed."
        ) from None


class EncryptedTextField(models.TextField):
    """A text field whose value is encrypted before it reaches the database."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value is not None else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
