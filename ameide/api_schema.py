"""The OpenAPI schema says what the API answers: every operation also documents its error
responses, all in the one error shape of ameide.api_errors."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from ameide.api_errors import API_PREFIX, ErrorSerializer

BODY_METHODS = ("POST", "PUT", "PATCH")


class ApiAutoSchema(AutoSchema):
    def error_responses(self) -> dict[int, str]:
        errors = {
            400: "Invalid input: a body field or a query parameter (see `errors`).",
            401: "No credentials, or a token that is not valid (see `WWW-Authenticate`).",
            403: "Not allowed: not a member of the tenant, tenant inactive, or a CSRF failure;"
            " or a write past one of the tenant's quotas (`quota_exceeded`).",
            429: "The tenant's rate or concurrency limit (`rate_limited`, `concurrency_limited`);"
            " retry after `Retry-After` seconds (`RateLimit-Policy`, `RateLimit`).",
            503: "The database is unavailable, a statement ran past the tenant's timeout"
            " (`statement_timeout`), or the tenant's limits cannot be checked and the request"
            " was not run (`limits_unavailable`); retry after `Retry-After` seconds.",
        }
        if "{" in self.path:
            errors[404] = "No such object in the caller's tenant."
        elif self.method == "GET" and self._is_list_view():
            errors[404] = "The cursor was not issued by the API (`invalid_cursor`)."
        if self.method in BODY_METHODS:
            errors[413] = "The body is larger than the limit."
            errors[415] = "The body is not application/json."
        return errors

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not self.path.startswith(API_PREFIX):
            return responses
        for code, description in sorted(self.error_responses().items()):
            responses.setdefault(
                str(code),
                self._get_response_for_code(
                    OpenApiResponse(response=ErrorSerializer, description=description),
                    str(code),
                    direction=direction,
                ),
            )
        return responses
