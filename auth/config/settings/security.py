"""Secrets, hosts, password hashing and validation, login brute-force limits, proxies."""

from django.core.exceptions import ImproperlyConfigured

from auth.config.env import comma_list
from auth.config.settings.base import ENV

if ENV.django_secret_key:
    SECRET_KEY = ENV.django_secret_key
elif ENV.is_development:
    SECRET_KEY = "insecure-development-only-auth-secret-key"  # noqa: S105
else:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set outside development.")

ALLOWED_HOSTS = comma_list(ENV.allowed_hosts)

# Argon2id first; the others only verify (and upgrade) hashes made by them.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "full_name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ADMIN_EMAIL = ENV.admin_email
ADMIN_PASSWORD = ENV.admin_password

# Failed logins: per (account, address), per address, and a ceiling per account, counted in
# PostgreSQL (shared by replicas); see auth.accounts.throttling.
LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS = ENV.login_max_failures_per_account_address
LOGIN_MAX_FAILURES_PER_ACCOUNT = ENV.login_max_failures_per_account
LOGIN_MAX_FAILURES_PER_ADDRESS = ENV.login_max_failures_per_address
LOGIN_FAILURE_WINDOW_SECONDS = ENV.login_failure_window_seconds

# Registrations: per client address per hour and overall per minute (0: off), also in PostgreSQL.
REGISTRATIONS_PER_ADDRESS_PER_HOUR = ENV.registrations_per_address_per_hour
REGISTRATIONS_PER_MINUTE = ENV.registrations_per_minute

# Argon2 routes admitted at once per process, and how long others wait (auth.core.admission).
REGISTER_CONCURRENCY = ENV.register_concurrency
LOGIN_CONCURRENCY = ENV.login_concurrency
ADMISSION_WAIT_SECONDS = ENV.admission_wait_seconds

# Peers whose X-Forwarded-For is believed (the gateway); see auth.core.client_address.
TRUSTED_PROXIES = comma_list(ENV.trusted_proxies)

# Logins go through auth.accounts.services.user_login, never django.contrib.auth.authenticate.
AUTHENTICATION_BACKENDS: list[str] = []
