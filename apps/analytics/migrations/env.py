from apps.analytics.adapters.tables import metadata
from kit.alembic_env import run_migrations

run_migrations(metadata)
