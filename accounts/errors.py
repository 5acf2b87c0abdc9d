"""Errors of the account writes and reads (users, memberships, the session's tenant)."""

from __future__ import annotations


class AccountInputError(ValueError):
    """Bad input for a user or membership operation; nothing was written."""


class AccountNotFound(LookupError):
    """No user (or membership) answers to the name given."""


class TenantSwitchRefused(Exception):
    """A browser session may not make that tenant its own; `code` says why (for the audit)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
