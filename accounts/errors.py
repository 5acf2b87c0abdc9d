"""The errors of the identity app, in one place: tokens, sign-in, admission, account writes."""

from __future__ import annotations

from tenants.exceptions import EntryRefused


class AccountInputError(ValueError):
    """Bad input for a user or membership operation; nothing was written."""


class AccountNotFound(LookupError):
    """No user (or membership) answers to the name given."""


class TenantSwitchRefused(Exception):
    """A browser session may not make that tenant its own; `code` says why (for the audit)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidToken(Exception):
    """The token cannot be trusted; ``reason`` is safe to echo in WWW-Authenticate."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TenantClaimError(Exception):
    """The token is authentic but its tenant claim is unusable (a 403, not a 401)."""

    def __init__(self, reason: str, *, issuer: str, subject: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issuer = issuer
        self.subject = subject


class InsecureIssuer(ValueError):
    """An issuer URL that tokens must not be trusted from."""


class PrincipalRejected(EntryRefused):
    """The caller is authenticated but may not enter the tenant (403), or is not (401)."""


class TokenRejected(PrincipalRejected):
    """A 401: the token cannot be trusted. Carries the RFC 6750 challenge for the response."""

    def __init__(self, reason: str, *, hint: str = "") -> None:
        detail = f"Invalid token: {reason}." + (f" {hint}" if hint else "")
        super().__init__(status=401, code="invalid_token", detail=detail)
        # Reasons are fixed strings of accounts.tokens; quotes are dropped all the same so no
        # value can ever break out of the quoted-string.
        description = reason.replace('"', "").replace("\\", "")
        self.www_authenticate = (
            f'Bearer realm="api", error="invalid_token", error_description="{description}"'
        )


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read or made no sense."""


class SignInRefused(Exception):
    """Sign-in cannot complete; `message` is shown to the person on the login page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
