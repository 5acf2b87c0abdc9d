"""Writes about identities: first-login provisioning of users and their membership."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Membership, User
from tenants.audit import record_event
from tenants.context import tenant_context
from tenants.models import Tenant

logger = logging.getLogger(__name__)

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]+")
_USERNAME_BASE_LENGTH = 60


def user_provision(
    *,
    issuer: str,
    subject: str,
    tenant: Tenant,
    claims: Mapping[str, Any],
    is_admin: bool,
) -> User:
    """Create the account of an (issuer, subject) seen for the first time, and its membership.

    Accounts are keyed by (issuer, subject) only: an existing account with the same e-mail is
    never reused, because another provider (or another tenant's realm) vouches for that
    address. The membership is created only here, together with the account; afterwards
    memberships are managed in the admin and the CLI, so a member an admin removed stays
    removed even though their tokens keep naming the tenant. `tenant` must be active (the
    caller checked it); tenants are never created from a token.
    """
    if not tenant.is_active:
        raise ValueError("users are provisioned only into active tenants")
    role = Membership.Role.ADMIN if is_admin else Membership.Role.MEMBER
    first_name, last_name = _names(claims)
    user = User(
        username=_free_username(issuer=issuer, subject=subject, claims=claims),
        issuer=issuer,
        subject=subject,
        email=_claim_str(claims, "email", 254),
        first_name=first_name,
        last_name=last_name,
    )
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
            with tenant_context(tenant):
                Membership.objects.create(user=user, role=role)
                record_event(
                    action="user.provisioned",
                    actor=user.username,
                    tenant=tenant,
                    details={"issuer": issuer, "subject": subject, "role": role},
                )
    except IntegrityError:
        # A concurrent first request of the same person won the race: use their account.
        existing = User.objects.filter(issuer=issuer, subject=subject).first()
        if existing is None:
            raise
        return existing
    logger.info("provisioned %s from %s into tenant %s", user.username, issuer, tenant.slug)
    return user


def username_for(*, issuer: str, subject: str, claims: Mapping[str, Any], length: int = 10) -> str:
    """A readable, stable username: a name from the claims plus a digest of (issuer, subject).

    The digest keeps accounts of different providers apart even when they share a name, and
    stops a provider from claiming the username of a local account such as `admin`.
    """
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:length]
    base = ""
    for name in ("preferred_username", "nickname", "email"):
        value = _claim_str(claims, name, 254)
        if value:
            base = value.split("@")[0] if name == "email" else value
            break
    base = _USERNAME_UNSAFE.sub("-", base).strip("-.")[:_USERNAME_BASE_LENGTH] or "user"
    return f"{base}-{digest}"


def _free_username(*, issuer: str, subject: str, claims: Mapping[str, Any]) -> str:
    for length in (10, 16, 32, 64):
        candidate = username_for(issuer=issuer, subject=subject, claims=claims, length=length)
        if not User.objects.filter(username=candidate).exists():
            return candidate
    return candidate  # practically unreachable; the unique constraint has the final word


def _names(claims: Mapping[str, Any]) -> tuple[str, str]:
    given = _claim_str(claims, "given_name", 150)
    family = _claim_str(claims, "family_name", 150)
    if given or family:
        return given, family
    first, _, last = _claim_str(claims, "name", 301).partition(" ")
    return first[:150], last[:150]


def _claim_str(claims: Mapping[str, Any], name: str, limit: int) -> str:
    value = claims.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""
