"""Identity: users keyed by (issuer, subject), and their memberships in tenants."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from accounts.conf import check_issuer_url
from accounts.errors import InsecureIssuer
from accounts.secrets import EncryptedTextField
from accounts.tokens import IssuerConfig
from tenants.constraints import GlobalRowSecurity
from tenants.models import Tenant, TenantModel
from tenants.preparation import Tenancy

# Under a tenant, SQL sees only the users who are members of that tenant (memberships are
# tenant rows, so the subquery is itself limited to the tenant's memberships) or whose home
# tenant it is (a purge of the tenant clears that key).
# A tenant in a dedicated schema keeps its memberships there, which the subquery (bound to
# public's table when the policy is made) does not see: the wall's function lists them, once
# per statement (docs/placement.md).
# OFFSET 0 keeps the subquery a probe of the (tenant, user) key for each user row read. Without
# it PostgreSQL may rewrite the EXISTS into a hash of all the tenant's memberships, built by
# every statement that reads a user: it cannot know how many members the signed tenant has (the
# id is a parameter) and plans for an average tenant, so a page of 50 workflows of a tenant with
# 5,000 members cost 1.9 ms more than one of a tenant with 10 (docs/benchmarks.md, pair 2m).
_MEMBERS_OF_THE_TENANT = (
    "home_tenant_id = {tenant} OR "
    "EXISTS (SELECT 1 FROM accounts_membership m WHERE m.user_id = {table}.id OFFSET 0) OR "
    "{table}.id = ANY ((SELECT ameide_private.scope_member_ids())::bigint[])"
)
# The same where Citus is installed, through a function (migration 0009, SECURITY INVOKER, so
# the memberships' own policy limits it alike): Citus cannot plan this coordinator table's
# subquery over memberships, but runs the function's query on its own (docs/citus.md).
_MEMBERS_OF_THE_TENANT_ON_CITUS = (
    "home_tenant_id = {tenant} OR accounts_user_has_membership({table}.id)"
)


class User(AbstractUser):
    """A person. Global: one account may belong to several tenants through memberships.

    Accounts from an identity provider are keyed by (issuer, subject) and never linked to
    another account by e-mail. Local accounts (platform admins, demo users) have no issuer.
    """

    tenancy = Tenancy.GLOBAL

    issuer = models.CharField(max_length=512, blank=True, default="")
    subject = models.CharField(max_length=255, blank=True, default="")
    home_tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The tenant a local-password sign-in enters (demo users, tenant admins).",
    )
    awaiting_first_sign_in = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Created by an import before this person ever signed in: their first "
        "sign-in provisions them into the tenant their token names, like a new account.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"],
                condition=~Q(issuer=""),
                name="user_issuer_subject_uniq",
            ),
            GlobalRowSecurity(
                name="accounts_user_rls",
                under_tenant=_MEMBERS_OF_THE_TENANT,
                under_tenant_on_citus=_MEMBERS_OF_THE_TENANT_ON_CITUS,
            ),
        ]

    @property
    def is_platform_admin(self) -> bool:
        return self.is_active and self.is_superuser


class Membership(TenantModel):
    """A user's place in one tenant, with its role there."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        MEMBER = "member", "Member"
        ADMIN = "admin", "Tenant admin"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_tenant_user_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant_id} ({self.role})"


class IdentityProvider(models.Model):
    """An OpenID provider kept in the database, e.g. an enterprise tenant's own Keycloak realm.

    Global: one provider may serve several tenants, but only those bound to it through
    IdentityProviderTenant; a token of this issuer naming any other tenant is refused. The
    platform-wide provider of the environment (OIDC_ISSUER) is not stored here.
    """

    tenancy = Tenancy.GLOBAL

    class Kind(models.TextChoices):
        GENERIC = "generic", "Generic OIDC"
        KEYCLOAK = "keycloak", "Keycloak"
        AUTH0 = "auth0", "Auth0"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GENERIC)
    issuer = models.CharField(
        max_length=512,
        unique=True,
        help_text="Exactly the token's `iss`, e.g. https://sso.example.com/realms/acme. "
        "Plain http only on loopback addresses.",
    )
    audience = models.CharField(max_length=255, help_text="The `aud` API tokens must carry.")
    tenant_claim = models.CharField(
        max_length=255,
        default="tenant_id",
        help_text="Claim whose value is a bound tenant's external id (e.g. "
        "https://example.com/tenant_id for Auth0, org_id for Auth0 Organizations).",
    )
    roles_claim = models.CharField(
        max_length=255,
        blank=True,
        help_text="Claim with a list of roles; dots walk into objects (realm_access.roles).",
    )
    admin_role = models.CharField(
        max_length=100,
        blank=True,
        help_text="Role that makes a first-time user a tenant admin (empty: never).",
    )
    client_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="Optional, kept for browser sign-in through this provider; browser sign-in "
        "currently uses the environment's provider (OIDC_ISSUER) only. API tokens need none.",
    )
    client_secret = EncryptedTextField(
        blank=True, help_text="Stored encrypted (accounts.secrets); never shown in clear."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [GlobalRowSecurity(name="accounts_identityprovider_rls")]

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer})"

    def save(self, *args, **kwargs) -> None:
        # The http rule is a security invariant, so it holds for every write path, not only
        # for forms that call clean().
        self._check_issuer()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self._check_issuer()
        if self.issuer in {settings.OIDC_ISSUER, settings.DEV_ISSUER_URL}:
            raise ValidationError(
                {"issuer": "This issuer is already the platform-wide provider (settings)."}
            )
        try:
            self.issuer_config()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def _check_issuer(self) -> None:
        try:
            check_issuer_url(self.issuer)
        except InsecureIssuer as exc:
            raise ValidationError({"issuer": str(exc)}) from None

    def issuer_config(self) -> IssuerConfig:
        """How this provider's API tokens are verified (raises ValueError when unusable)."""
        return IssuerConfig(
            issuer=self.issuer,
            audiences=(self.audience,),
            tenant_claim=self.tenant_claim,
            roles_claim=self.roles_claim or None,
            leeway_seconds=settings.OIDC_LEEWAY_SECONDS,
        )


class IdentityProviderTenant(models.Model):
    """Permission for a database provider to assert one tenant in its tokens."""

    tenancy = Tenancy.GLOBAL

    provider = models.ForeignKey(
        IdentityProvider, on_delete=models.CASCADE, related_name="tenant_bindings"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "tenant"], name="identity_provider_tenant_uniq"
            ),
            GlobalRowSecurity(name="accounts_idp_tenant_rls"),
        ]

    def __str__(self) -> str:
        return f"{self.provider.name} -> {self.tenant}"


class Session(AbstractBaseSession):
    """A browser session, keyed by the SHA-256 of its cookie value (accounts.sessions)."""

    tenancy = Tenancy.GLOBAL

    session_key = models.CharField("session key hash", max_length=64, primary_key=True)

    class Meta(AbstractBaseSession.Meta):
        db_table = "accounts_session"
        constraints = [GlobalRowSecurity(name="accounts_session_rls")]
