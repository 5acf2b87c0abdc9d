"""How the API's authentication appears in the OpenAPI schema: a bearer JWT, or a session."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

BEARER = "bearerAuth"
SESSION = "sessionAuth"


class TenantPrincipalScheme(OpenApiAuthenticationExtension):
    """accounts.authentication.TenantPrincipalAuthentication: either credential admits (OR)."""

    target_class = "accounts.authentication.TenantPrincipalAuthentication"
    name = [BEARER, SESSION]

    def get_security_requirement(self, auto_schema):
        return [{BEARER: []}, {SESSION: []}]

    def get_security_definition(self, auto_schema):
        return [
            build_bearer_security_scheme_object(
                header_name="AUTHORIZATION", token_prefix="Bearer", bearer_format="JWT"
            ),
            {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME},
        ]
