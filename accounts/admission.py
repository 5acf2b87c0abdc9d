"""From a verified token to a principal: tenant, provider binding, provisioning, membership.

Shared by the API's bearer tokens and the browser's ID tokens, so both answer alike.
"""

from __future__ import annotations

from accounts.models import Membership, User
from accounts.principal import Principal, PrincipalRejected, enter_tenant
from accounts.providers import ProviderPolicy
from accounts.services import user_provision
from accounts.tokens import VerifiedToken
from tenants.context import tenant_context
from tenants.models import Tenant


def admit(*, token: VerifiedToken, policy: ProviderPolicy, via: str) -> Principal:
    """The principal of a verified token, provisioning a first-time user; 403 when refused."""
    tenant = tenant_named_by(token=token, policy=policy)
    # The hot path, one query: the caller's membership with its user, read inside the
    # tenant (RLS admits only its rows). Nothing found means a first sign-in or a non-member.
    with tenant_context(tenant):
        membership = (
            Membership.objects.select_related("user")
            .filter(user__issuer=token.issuer, user__subject=token.subject)
            .first()
        )
    if membership is not None:
        if not membership.user.is_active:
            raise PrincipalRejected(
                status=403, code="user_inactive", detail="User is inactive.", tenant=tenant
            )
        return Principal(user=membership.user, tenant=tenant, membership=membership, via=via)
    user = User.objects.filter(issuer=token.issuer, subject=token.subject).first()
    if user is None:
        user = user_provision(
            issuer=token.issuer,
            subject=token.subject,
            tenant=tenant,
            claims=token.claims,
            is_admin=policy.admin_role is not None and policy.admin_role in token.roles,
        )
    return enter_tenant(user=user, tenant=tenant, via=via)


def tenant_named_by(*, token: VerifiedToken, policy: ProviderPolicy) -> Tenant:
    """The active tenant whose external id the token's claim carries exactly."""
    # Case-sensitive equality in PostgreSQL; the claim was already refused if it was padded,
    # empty or not a string (accounts.tokens), so no normalisation happens anywhere.
    tenant = Tenant.objects.filter(external_id=token.tenant_external_id).first()
    if tenant is None or not policy.may_assert(tenant):
        # One answer for "no such tenant" and "not yours to name": a provider bound to some
        # tenants learns nothing about the others.
        raise PrincipalRejected(status=403, code="tenant_unknown", detail="Unknown tenant.")
    if not tenant.is_active:
        raise PrincipalRejected(
            status=403, code="tenant_inactive", detail="Tenant is not active.", tenant=tenant
        )
    return tenant
