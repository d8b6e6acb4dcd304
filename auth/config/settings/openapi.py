"""The OpenAPI document (drf-spectacular) served at ``GET /openapi.json``: only the DRF views
under ``/auth/`` are described (operational routes are plain Django views, never enumerated)."""

from kit.settings import API_VERSION

SPECTACULAR_SETTINGS = {
    "TITLE": "Auth service",
    "DESCRIPTION": "Accounts and tokens: registration, login, token refresh, the current user and "
    "the JWKS that verifies access tokens. Errors are RFC 9457 problem details.",
    "VERSION": API_VERSION,
    # Like the FastAPI services' documents (and the gateway's merged one).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Input and output serializers are different classes already; keep read/write schemas apart.
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/auth",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    # The platform's conventions (operation ids, the one Problem schema): see kit.openapi.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "auth.core.openapi.platform_conventions",
    ],
}
