"""Token issuing: who signs, for whom, for how long (keys are loaded by auth.accounts.keys)."""

from auth.config.env import comma_list
from auth.config.settings.base import ENV

JWT_ISSUER = ENV.jwt_issuer
JWT_AUDIENCE = ENV.jwt_audience
JWT_ACCESS_TTL_SECONDS = ENV.jwt_access_ttl_seconds
JWT_REFRESH_TTL_SECONDS = ENV.jwt_refresh_ttl_seconds

JWT_PRIVATE_KEY = ENV.jwt_private_key
JWT_PRIVATE_KEY_FILE = ENV.jwt_private_key_file
JWT_KEY_ID = ENV.jwt_key_id
JWT_EXTRA_PUBLIC_KEYS = comma_list(ENV.jwt_extra_public_keys)
# Only when no key is configured and ENVIRONMENT is development/test: generated once, reused.
JWT_GENERATE_KEYS_IN = ENV.jwt_keys_dir if ENV.is_development else None
