"""An identity an import created before its owner signed in cannot lock them out (issue 9.5)."""

from __future__ import annotations

import pytest

from accounts import admission
from accounts.errors import PrincipalRejected
from accounts.models import Membership, User
from accounts.providers import ProviderPolicy
from accounts.tokens import IssuerConfig, VerifiedToken
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example/realms/shared"


def _token(tenant) -> VerifiedToken:
    return VerifiedToken(
        issuer=ISSUER,
        subject="sub-victim",
        audience="api",
        claims={},
        tenant_external_id=tenant.external_id,
        roles=(),
        email=None,
        name=None,
        expires_at=2**31,
    )


POLICY = ProviderPolicy(
    config=IssuerConfig(issuer=ISSUER, audiences=("api",), tenant_claim="tenant_id"), label="test"
)


def _pre_created(*, tenant, awaiting: bool) -> User:
    """What a crafted import leaves: the victim's identity, a member of the attacker's tenant."""
    user = User.objects.create_user(
        username="victim", issuer=ISSUER, subject="sub-victim", awaiting_first_sign_in=awaiting
    )
    with tenant_context(tenant):
        Membership.objects.create(user=user)
    return user


def test_the_first_sign_in_of_an_imported_identity_provisions_its_own_tenant(tenant_a, tenant_b):
    user = _pre_created(tenant=tenant_a, awaiting=True)
    principal = admission.admit(token=_token(tenant_b), policy=POLICY, via="bearer")
    assert (principal.user.pk, principal.tenant) == (user.pk, tenant_b)
    user.refresh_from_db()
    assert user.awaiting_first_sign_in is False


def test_an_account_that_signed_in_before_keeps_removals(tenant_a, tenant_b):
    _pre_created(tenant=tenant_a, awaiting=False)
    with pytest.raises(PrincipalRejected) as refused:
        admission.admit(token=_token(tenant_b), policy=POLICY, via="bearer")
    assert refused.value.code == "not_a_member"
