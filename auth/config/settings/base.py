"""Apps, middleware, DRF and i18n: the parts that do not depend on the deployment."""

from auth.config.env import load

ENV = load()

DEBUG = ENV.django_debug

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",  # password hashing and validators
    "rest_framework",
    "drf_spectacular",  # GET /openapi.json, and `manage.py spectacular`
    "auth.accounts.apps.AccountsConfig",
]

MIDDLEWARE = [
    "auth.core.metrics.PrometheusMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "auth.config.urls"
APPEND_SLASH = False  # paths are exact, as in the public contract; no redirects

AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

TEMPLATES: list[dict] = []

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Only GET /auth/me authenticates (per view); nothing uses sessions or CSRF.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "auth.core.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The gateway's MAX_BODY_BYTES default (1 MiB); larger is a 413, enforced for every body
# (chunked too) by auth.core.body_limit before Django reads it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
