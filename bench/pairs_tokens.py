"""Pair 5: local JWT verification with warm keys against decoding the token without checks."""

from __future__ import annotations

import jwt

from accounts.tokens import IssuerConfig, JWKSCache, TokenVerifier
from bench.issuer import AUDIENCE, ROLES_CLAIM, TENANT_CLAIM, BenchIssuer
from bench.measure import Check, Row, calibrate, interleave, per_op_seconds
from bench.pairs_database import Plan


def verification(*, plan: Plan) -> list[Row | Check]:
    """accounts.tokens.TokenVerifier.verify (RS256, keys cached) vs an unverified decode.

    The ratio is what a signature, issuer, audience and lifetime check cost over merely
    reading the claims; there is no target on it, the absolute figure is what matters next
    to a request's milliseconds. The key cache must not fetch during the timed batches.
    """
    issuer = BenchIssuer()
    config = IssuerConfig(
        issuer=issuer.issuer,
        audiences=(AUDIENCE,),
        tenant_claim=TENANT_CLAIM,
        roles_claim=ROLES_CLAIM,
        algorithms=("RS256",),
    )
    cache = JWKSCache(fetch=issuer.fetch)
    verifier = TokenVerifier(
        issuers=lambda iss: config if iss == config.issuer else None, jwks=cache
    )
    token = issuer.mint(tenant_external_id="bench-00001", subject="bench-subject")
    verified = verifier.verify(token)  # warms the key cache (discovery + JWKS)
    assert verified.tenant_external_id == "bench-00001"
    warm_fetches = issuer.requests

    def verify():
        return verifier.verify(token)

    def decode_only():
        return jwt.decode(token, options={"verify_signature": False})

    count = calibrate(verify, seconds=plan.batch_seconds)
    samples = interleave(
        {
            "verify": lambda: per_op_seconds(verify, count=count),
            "decode": lambda: per_op_seconds(decode_only, count=count),
        },
        rounds=plan.rounds,
    )
    fetches = issuer.requests - warm_fetches
    return [
        Row(
            pair="5",
            title=f"JWT ({len(token)} bytes, RS256): verify with cached keys vs decode unverified",
            ours_label="verify",
            base_label="decode",
            unit="us",
            ours=samples["verify"],
            base=samples["decode"],
            extra={"token_bytes": len(token), "calls_per_batch": count},
        ),
        Check(
            pair="5",
            title="key fetches during the timed verification batches",
            observed=f"{fetches} (warm-up: {warm_fetches})",
            expected="0",
            ok=fetches == 0,
        ),
    ]
