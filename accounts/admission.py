"""From a verified token to a principal: tenant, provider binding, provisioning, membership.

Shared by the API's bearer tokens and the browser's ID tokens, so both answer alike.
"""

from __future__ import annotations

import functools

from django.db import connection, models

from accounts.models import Membership, User
from accounts.principal import Principal, check_entry, enter_tenant
from accounts.providers import ProviderPolicy
from accounts.services import user_first_sign_in, user_provision
from accounts.tokens import VerifiedToken
from tenants.context import tenant_context
from tenants.models import Tenant

# External id -> tenant id, learnt from earlier requests. Only a hint: the hot path reads the
# tenant row again (status, external id) in the same query as the membership, and falls back
# to the full lookup whenever the hint is stale, so a suspension or a removal counts at once.
_TENANT_ID_HINTS: dict[str, int] = {}
_MAX_HINTS = 10_000


def reset() -> None:
    """Forget the learnt tenant ids (tests; a new process starts empty anyway)."""
    _TENANT_ID_HINTS.clear()


def admit(*, token: VerifiedToken, policy: ProviderPolicy, via: str) -> Principal:
    """The principal of a verified token, provisioning a first-time user; 403 when refused."""
    hint = _TENANT_ID_HINTS.get(token.tenant_external_id)
    if hint is not None:
        principal = _admit_member(token=token, policy=policy, via=via, tenant_id=hint)
        if principal is not None:
            return principal
    tenant = tenant_named_by(token=token, policy=policy)
    if len(_TENANT_ID_HINTS) >= _MAX_HINTS:
        _TENANT_ID_HINTS.clear()
    _TENANT_ID_HINTS[token.tenant_external_id] = tenant.pk
    principal = _admit_member(token=token, policy=policy, via=via, tenant_id=tenant.pk)
    if principal is not None:
        return principal
    # A first sign-in (provision the user) or a non-member (403 from enter_tenant).
    user = User.objects.filter(issuer=token.issuer, subject=token.subject).first()
    is_admin = policy.admin_role is not None and policy.admin_role in token.roles
    if user is None:
        user = user_provision(
            issuer=token.issuer,
            subject=token.subject,
            tenant=tenant,
            claims=token.claims,
            is_admin=is_admin,
        )
    elif user.awaiting_first_sign_in:
        user_first_sign_in(user=user, tenant=tenant, is_admin=is_admin)
    return enter_tenant(user=user, tenant=tenant, via=via)


def _admit_member(
    *, token: VerifiedToken, policy: ProviderPolicy, via: str, tenant_id: int
) -> Principal | None:
    """The hot path, one query: membership, user and tenant of the caller in `tenant_id`.

    Read inside that tenant (RLS admits only its rows). None when there is no such membership
    or the tenant no longer carries the token's external id; the caller then looks up fully.
    """
    with tenant_context(Tenant(pk=tenant_id)):
        membership = _membership_of(tenant_id=tenant_id, issuer=token.issuer, subject=token.subject)
    if membership is None:
        return None
    tenant = membership.tenant
    if tenant.external_id != token.tenant_external_id:
        _TENANT_ID_HINTS.pop(token.tenant_external_id, None)
        return None
    check_entry(tenant=tenant if policy.may_assert(tenant) else None, user=membership.user)
    return Principal(user=membership.user, tenant=tenant, membership=membership, via=via)


def _membership_of(*, tenant_id: int, issuer: str, subject: str) -> Membership | None:
    """Membership (with user and tenant) of an identity in the current tenant, by fixed SQL.

    Sent on every request whose token is not in the admission cache, so it skips the ORM's
    queryset building and compiling (about two thirds of the time this query took through
    it); the rows still become model instances. The tenant is named in the SQL and RLS
    checks it again, as for any statement.
    """
    sql, models_and_widths = _membership_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, issuer, subject])
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for model, names in models_and_widths:
        instances.append(model.from_db(connection.alias, names, row[start : start + len(names)]))
        start += len(names)
    membership, user, tenant = instances
    membership.user, membership.tenant = user, tenant
    return membership


@functools.cache
def _membership_query() -> tuple[str, list[tuple[type[models.Model], list[str]]]]:
    """The admission query's SQL and, per model, the fields its columns fill (from _meta, so
    the query follows the models)."""
    tables = [(Membership, "m"), (User, "u"), (Tenant, "t")]
    columns, layout = [], []
    for model, alias in tables:
        fields = model._meta.concrete_fields
        columns += [f'{alias}."{field.column}"' for field in fields]
        layout.append((model, [field.attname for field in fields]))
    sql = (
        f"SELECT {', '.join(columns)} FROM {Membership._meta.db_table} m "
        f"JOIN {User._meta.db_table} u ON u.id = m.user_id "
        f"JOIN {Tenant._meta.db_table} t ON t.id = m.tenant_id "
        "WHERE m.tenant_id = %s AND u.issuer = %s AND u.subject = %s LIMIT 1"
    )
    return sql, layout


def tenant_named_by(*, token: VerifiedToken, policy: ProviderPolicy) -> Tenant:
    """The active tenant whose external id the token's claim carries exactly."""
    # Case-sensitive equality in PostgreSQL; the claim was already refused if it was padded,
    # empty or not a string (accounts.tokens), so no normalisation happens anywhere.
    tenant = Tenant.objects.filter(external_id=token.tenant_external_id).first()
    # One answer for "no such tenant" and "not yours to name": a provider bound to some
    # tenants learns nothing about the others.
    check_entry(tenant=tenant if tenant is not None and policy.may_assert(tenant) else None)
    return tenant
