"""The issuer allow-list: which identity providers we trust, and which tenants each may assert.

Three sources: the platform-wide provider of the environment (OIDC_ISSUER), the development
issuer (DEV_ISSUER_ENABLED, DEBUG only), and the enabled IdentityProvider rows. The rows are
read once per OIDC_PROVIDER_CACHE_SECONDS per process and again right after any change made
in this process, so the request path costs no query and no network call in steady state.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import IdentityProvider, IdentityProviderTenant
from accounts.tokens import IssuerConfig
from tenants.models import Tenant

logger = logging.getLogger(__name__)

DEV_ISSUER_AUDIENCE = "ameide-api"
DEV_ISSUER_TENANT_CLAIM = "tenant_id"
DEV_ISSUER_ROLES_CLAIM = "roles"
DEV_ISSUER_ADMIN_ROLE = "admin"


@dataclass(frozen=True, kw_only=True)
class ProviderPolicy:
    """How one issuer's tokens are verified, and which tenants it may speak for."""

    config: IssuerConfig
    label: str
    admin_role: str | None = None
    # None for platform-wide providers (environment, dev issuer), which may assert any tenant.
    provider_id: int | None = None
    tenant_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def issuer(self) -> str:
        return self.config.issuer

    @property
    def is_platform_wide(self) -> bool:
        return self.provider_id is None

    def may_assert(self, tenant: Tenant) -> bool:
        return self.is_platform_wide or tenant.pk in self.tenant_ids


def dev_issuer_active() -> bool:
    """The development issuer is served and trusted only when enabled and DEBUG is on."""
    return bool(settings.DEV_ISSUER_ENABLED and settings.DEBUG)


def environment_policy() -> ProviderPolicy | None:
    """The platform-wide provider of OIDC_ISSUER, or None when it is not configured."""
    if not settings.OIDC_ISSUER:
        return None
    return ProviderPolicy(
        config=IssuerConfig(
            issuer=settings.OIDC_ISSUER,
            audiences=tuple(settings.OIDC_AUDIENCE),
            tenant_claim=settings.OIDC_TENANT_CLAIM,
            roles_claim=settings.OIDC_ROLES_CLAIM or None,
            leeway_seconds=settings.OIDC_LEEWAY_SECONDS,
        ),
        label=f"environment ({settings.OIDC_PROVIDER})",
        admin_role=settings.OIDC_ADMIN_ROLE or None,
    )


def dev_issuer_policy() -> ProviderPolicy | None:
    if not dev_issuer_active():
        return None
    return ProviderPolicy(
        config=IssuerConfig(
            issuer=settings.DEV_ISSUER_URL,
            audiences=(DEV_ISSUER_AUDIENCE,),
            tenant_claim=DEV_ISSUER_TENANT_CLAIM,
            roles_claim=DEV_ISSUER_ROLES_CLAIM,
            algorithms=("RS256",),
            leeway_seconds=settings.OIDC_LEEWAY_SECONDS,
        ),
        label="development issuer",
        admin_role=DEV_ISSUER_ADMIN_ROLE,
    )


class ProviderRegistry:
    """Process-wide issuer -> policy map; thread-safe, rebuilt wholesale, never mutated."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._static: dict[str, ProviderPolicy] | None = None
        # (policies, monotonic time read); replaced as one value so readers need no lock.
        self._stored: tuple[dict[str, ProviderPolicy], float] | None = None
        self._generation = 0
        self.loads = 0  # database reads so far (tests prove the steady state needs none)

    def policy_for(self, issuer: str) -> ProviderPolicy | None:
        # Settings-based providers win: an IdentityProvider row cannot shadow them.
        policy = self._static_policies().get(issuer)
        if policy is not None:
            return policy
        return self._stored_policies().get(issuer)

    def issuers(self) -> list[str]:
        """Every issuer trusted now, settings-based and stored."""
        return sorted({*self._static_policies(), *self._stored_policies()})

    def invalidate(self) -> None:
        """Forget the database providers; the next lookup reads them again."""
        self._generation += 1
        self._stored = None

    def reset(self) -> None:
        """Forget everything (settings changed)."""
        self._static = None
        self.invalidate()

    def _static_policies(self) -> dict[str, ProviderPolicy]:
        static = self._static
        if static is None:
            policies = [p for p in (environment_policy(), dev_issuer_policy()) if p is not None]
            static = self._static = {policy.issuer: policy for policy in policies}
        return static

    def _stored_policies(self) -> dict[str, ProviderPolicy]:
        cached = self._stored
        if self._is_fresh(cached):
            return cached[0]
        with self._lock:
            cached = self._stored
            if self._is_fresh(cached):  # another thread loaded it while we waited
                return cached[0]
            generation, started = self._generation, self._clock()
            policies = _load_stored_policies()
            self.loads += 1
            # Invalidated while we read: use the result for this lookup but keep none of it.
            if generation == self._generation:
                self._stored = (policies, started)
            return policies

    def _is_fresh(self, cached) -> bool:
        return (
            cached is not None and self._clock() - cached[1] < settings.OIDC_PROVIDER_CACHE_SECONDS
        )


def _load_stored_policies() -> dict[str, ProviderPolicy]:
    bound: dict[int, set[int]] = {}
    for provider_id, tenant_id in IdentityProviderTenant.objects.filter(
        provider__enabled=True
    ).values_list("provider_id", "tenant_id"):
        bound.setdefault(provider_id, set()).add(tenant_id)
    policies: dict[str, ProviderPolicy] = {}
    for provider in IdentityProvider.objects.filter(enabled=True):
        try:
            config = provider.issuer_config()
        except ValueError as exc:
            # One broken row must not take every other provider's sign-ins down with it.
            logger.error("identity provider %s ignored: %s", provider.pk, exc)
            continue
        policies[provider.issuer] = ProviderPolicy(
            config=config,
            label=f"provider {provider.pk} ({provider.name})",
            admin_role=provider.admin_role or None,
            provider_id=provider.pk,
            tenant_ids=frozenset(bound.get(provider.pk, ())),
        )
    return policies


registry = ProviderRegistry()


def policy_for(issuer: str) -> ProviderPolicy | None:
    return registry.policy_for(issuer)


def trusted_issuers() -> list[str]:
    return registry.issuers()


def _providers_changed(**_kwargs) -> None:
    registry.invalidate()
    # Again after commit: another thread may have re-read the rows before they were visible.
    transaction.on_commit(registry.invalidate)


def _settings_changed(*, setting: str, **_kwargs) -> None:
    if setting.startswith(("OIDC_", "DEV_ISSUER_")) or setting == "DEBUG":
        registry.reset()


def connect_signals() -> None:
    for model in (IdentityProvider, IdentityProviderTenant):
        post_save.connect(_providers_changed, sender=model, dispatch_uid=f"providers.{model}")
        post_delete.connect(_providers_changed, sender=model, dispatch_uid=f"providers-d.{model}")
    setting_changed.connect(_settings_changed, dispatch_uid="accounts.providers.settings")
