"""Keys from tenant rows to global rows (users, ...), written so another database finds the rows.

- a user: `{"issuer", "subject", "username"}`, found again by (issuer, subject) when it has an
  issuer (an identity-provider account), else by username (a local account); a missing user is
  created from the archive's `users.jsonl` without a usable password and without staff or
  superuser rights;
- the tenant itself (a second key to it): `{"tenant": "self"}`; another tenant: `{"slug": ...}`;
- a model with natural keys (Django's `natural_key()`/`get_by_natural_key()`):
  `{"natural_key": [...]}`;
- anything else: `{"pk": ...}`, found only where that primary key exists (not portable).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models

from tenants.context import no_tenant
from tenants.exceptions import ArchiveInvalid, LifecycleError
from tenants.lifecycle.tables import canonical_line, encode_value
from tenants.models import Tenant

USER_REF_KEYS = ("issuer", "subject", "username")
# Format version 1 (archive.py) wrote the profile without the user's id in the source database.
USER_PROFILE_KEYS_V1 = (*USER_REF_KEYS, "email", "first_name", "last_name", "is_active", "home")
USER_PROFILE_KEYS = (*USER_PROFILE_KEYS_V1, "id")
# Fields of a profile that are not the account's own (a user created by import gets them so).
_NOT_ACCOUNT_FIELDS = ("home", "id")


def user_ref(user) -> dict[str, str]:
    return {key: getattr(user, key) for key in USER_REF_KEYS}


def _has_natural_keys(model: type[models.Model]) -> bool:
    return hasattr(model, "natural_key") and hasattr(model._default_manager, "get_by_natural_key")


class ExportRefs:
    """The portable references of one export, gathered before its rows are written."""

    def __init__(self, *, tenant: Tenant) -> None:
        self.tenant = tenant
        self._refs: dict[type[models.Model], dict[Any, dict]] = {}
        self._profiles: list[dict] = []

    def gather(self, *, model: type[models.Model], ids) -> None:
        known = self._refs.setdefault(model, {})
        missing = set(ids) - known.keys()
        if not missing:
            return
        # Global rows are read in the global scope: under the tenant, PostgreSQL shows only
        # its current members, and a row may point at a user who has left.
        with no_tenant():
            self._gather_global(model=model, missing=missing, known=known)

    def _gather_global(self, *, model, missing, known) -> None:
        if model is get_user_model():
            for user in model._default_manager.filter(pk__in=missing):
                known[user.pk] = user_ref(user)
                profile = {
                    key: getattr(user, key)
                    for key in USER_PROFILE_KEYS
                    if key not in _NOT_ACCOUNT_FIELDS
                }
                profile["home"] = user.home_tenant_id == self.tenant.pk
                profile["id"] = user.pk
                self._profiles.append(profile)
        elif model is Tenant:
            for tenant in Tenant.objects.filter(pk__in=missing):
                same = tenant.pk == self.tenant.pk
                known[tenant.pk] = {"tenant": "self"} if same else {"slug": tenant.slug}
        elif _has_natural_keys(model):
            for row in model._default_manager.filter(pk__in=missing):
                known[row.pk] = {"natural_key": encode_value(list(row.natural_key()))}
        else:
            known.update({pk: {"pk": encode_value(pk)} for pk in missing})

    def ref(self, *, model: type[models.Model], pk: Any) -> dict | None:
        return None if pk is None else self._refs[model][pk]

    def user_profiles(self) -> list[dict]:
        """Profiles of the referenced users, in a stable order (their file has a checksum)."""
        return sorted(self._profiles, key=lambda p: canonical_line(user_ref_of(p)))


def user_ref_of(profile: dict) -> dict[str, str]:
    return {key: profile[key] for key in USER_REF_KEYS}


def existing_user(ref: dict):
    """This database's account for a user reference, or None (read in the caller's scope:
    the global one, to see every account)."""
    users = get_user_model()._default_manager
    if ref["issuer"]:
        return users.filter(issuer=ref["issuer"], subject=ref["subject"]).first()
    user = users.filter(username=ref["username"]).first()
    if user is not None and user.issuer:
        raise LifecycleError(
            f"Username {ref['username']!r} belongs to an identity-provider account "
            "here, not to a local account as in the archive."
        )
    return user


def _same(value: Any) -> Any:
    return value


class ImportRefs:
    """Resolves an archive's references to this database's global rows; creates missing users."""

    def __init__(
        self, *, tenant: Tenant, profiles: list[dict], user_ids: Callable[[Any], Any] = _same
    ) -> None:
        self.tenant = tenant
        self._profiles = {canonical_line(user_ref_of(p)): p for p in profiles}
        self._resolved: dict[type[models.Model], dict[str, Any]] = {}
        # The id a created user gets, from their id in the source (tenants.lifecycle.ids).
        self._user_ids = user_ids
        self.users_created = 0

    def user_ids(self) -> dict[Any, Any]:
        """The source database's user ids -> this database's, for every user resolved (empty
        for archives of format version 1, whose profiles carry no id)."""
        resolved = self._resolved.get(get_user_model(), {})
        return {
            self._profiles[key]["id"]: pk
            for key, pk in resolved.items()
            if "id" in self._profiles.get(key, {})
        }

    def resolve(self, *, model: type[models.Model], ref: Any) -> Any:
        if ref is None:
            return None
        if not isinstance(ref, dict):
            raise ArchiveInvalid(f"A reference to {model._meta.label} is not an object: {ref!r}")
        key = canonical_line(ref)
        resolved = self._resolved.setdefault(model, {})
        if key not in resolved:
            with no_tenant():  # global rows are found (and created) in the global scope
                pk = self._find(model=model, ref=ref)
            if pk in resolved.values():
                raise LifecycleError(
                    f"Two references of the archive name the same {model._meta.label} here "
                    f"(id {pk}); the import would not be lossless."
                )
            resolved[key] = pk
        return resolved[key]

    def reverse(self, *, model: type[models.Model]) -> dict[Any, dict]:
        """This database's ids back to the archive's references (to verify what was written)."""
        return {pk: json.loads(key) for key, pk in self._resolved.get(model, {}).items()}

    def _find(self, *, model: type[models.Model], ref: dict) -> Any:
        if model is get_user_model():
            return self._find_user(ref)
        if model is Tenant:
            if ref == {"tenant": "self"}:
                return self.tenant.pk
            tenant = Tenant.objects.filter(slug=ref.get("slug")).first()
            if tenant is None:
                raise LifecycleError(f"The archive refers to tenant {ref!r}, unknown here.")
            return tenant.pk
        manager = model._default_manager
        try:
            if "natural_key" in ref:
                return manager.get_by_natural_key(*ref["natural_key"]).pk
            pk = model._meta.pk.to_python(ref.get("pk"))
            return manager.values_list("pk", flat=True).get(pk=pk)
        except model.DoesNotExist:
            raise LifecycleError(
                f"The archive refers to {model._meta.label} {ref!r}, which does not exist here."
            ) from None

    def _find_user(self, ref: dict) -> int:
        if sorted(ref) != sorted(USER_REF_KEYS):
            raise ArchiveInvalid(f"Malformed user reference {ref!r}.")
        key = canonical_line(ref)
        profile = self._profiles.get(key)
        if profile is None:
            raise ArchiveInvalid(f"User {ref!r} is referenced but missing from users.jsonl.")
        user = existing_user(ref)
        if user is None:
            return self._create_user(profile)
        # An existing account is used as it is: an archive never changes a global row (its
        # home tenant, rights or profile), whatever the archive says.
        return user.pk

    def _create_user(self, profile: dict) -> int:
        users = get_user_model()._default_manager
        if users.filter(username=profile["username"]).exists():
            raise LifecycleError(
                f"Username {profile['username']!r} is taken here by another identity; "
                "rename that account or import into another database."
            )
        user = get_user_model()(
            **{key: profile[key] for key in USER_PROFILE_KEYS if key not in _NOT_ACCOUNT_FIELDS},
            home_tenant=self.tenant if profile["home"] else None,
        )
        if "id" in profile:
            user.pk = self._user_ids(profile["id"])
        user.set_unusable_password()
        if profile["issuer"] and hasattr(user, "awaiting_first_sign_in"):
            # The person never signed in here: their first sign-in provisions them into the
            # tenant their token names, whatever this archive made them a member of.
            user.awaiting_first_sign_in = True
        user.save(force_insert=True)
        self.users_created += 1
        return user.pk
