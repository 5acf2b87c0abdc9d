"""The refusals clients can act on: 429 with Retry-After and the IETF RateLimit headers
(draft-ietf-httpapi-ratelimit-headers), 403 quota_exceeded, 503 statement_timeout and
limits_unavailable."""

from __future__ import annotations

import math

from django.http import HttpResponse, JsonResponse
from psycopg import errors as pg_errors

from limits.conf import Limits
from limits.errors import QuotaExceeded
from limits.store import RateDecision


def policy_header(limits: Limits) -> str:
    # The bucket as a quota: `burst` requests per the seconds it takes to refill it; and the
    # concurrency quota in the draft's "concurrent-requests" unit.
    window = max(1, math.ceil(limits.burst / limits.requests_per_second))
    return (
        f'"rate";q={limits.burst};w={window}, '
        f'"concurrency";q={limits.concurrent_requests};qu="concurrent-requests"'
    )


def rate_headers(response: HttpResponse, *, limits: Limits, decision: RateDecision) -> None:
    response["RateLimit-Policy"] = policy_header(limits)
    response["RateLimit"] = f'"rate";r={decision.remaining};t={math.ceil(decision.reset_seconds)}'


def too_many_requests(*, limits: Limits, decision: RateDecision | None) -> HttpResponse:
    """429: the rate (decision given) or concurrency (decision None) limit of the tenant."""
    if decision is not None and not decision.allowed:
        retry = max(1, math.ceil(decision.reset_seconds))
        body = {
            "detail": f"Rate limit (requests_per_second, burst): {limits.requests_per_second} "
            f"requests per second, bursts of {limits.burst}. Retry after {retry} s.",
            "code": "rate_limited",
        }
        response = JsonResponse(body, status=429)
        rate_headers(response, limits=limits, decision=decision)
    else:
        retry = 1
        body = {
            "detail": f"Concurrency limit (concurrent_requests): {limits.concurrent_requests} "
            f"requests in progress at once. Retry after {retry} s.",
            "code": "concurrency_limited",
        }
        response = JsonResponse(body, status=429)
        response["RateLimit-Policy"] = policy_header(limits)
        response["RateLimit"] = f'"concurrency";r=0;t={retry}'
        if decision is not None:
            response["RateLimit"] += f', "rate";r={decision.remaining};t=' + str(
                math.ceil(decision.reset_seconds)
            )
    response["Retry-After"] = str(retry)
    return response


def quota_body(exc: QuotaExceeded) -> dict:
    return {"detail": exc.detail, "code": "quota_exceeded"}


def statement_timeout_body() -> dict:
    return {
        "detail": "The request ran past the tenant's statement timeout and was cancelled.",
        "code": "statement_timeout",
    }


def is_statement_timeout(exc: BaseException) -> bool:
    """A django OperationalError caused by PostgreSQL cancelling a statement (SQLSTATE 57014)."""
    return isinstance(getattr(exc, "__cause__", None), pg_errors.QueryCanceled)


def statement_timeout_response() -> HttpResponse:
    response = JsonResponse(statement_timeout_body(), status=503)
    response["Retry-After"] = "1"
    return response


# Long enough for a restarted Redis to come back, short enough that clients do not give up.
LIMITS_UNAVAILABLE_RETRY_SECONDS = 5


def limits_unavailable_response() -> HttpResponse:
    """503: the store of rate and concurrency state could not decide, so the request was not
    run (limits fail closed; the client may send it again)."""
    retry = LIMITS_UNAVAILABLE_RETRY_SECONDS
    body = {
        "detail": "The tenant's rate and concurrency limits cannot be checked right now; the "
        f"request was not run. Retry after {retry} s.",
        "code": "limits_unavailable",
    }
    response = JsonResponse(body, status=503)
    response["Retry-After"] = str(retry)
    return response


def quota_response(exc: QuotaExceeded) -> HttpResponse:
    return JsonResponse(quota_body(exc), status=403)
