from kit.alembic_env import run_migrations
from apps.payments.adapters.tables import metadata

run_migrations(metadata)
