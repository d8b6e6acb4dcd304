from apps.booking.adapters.tables import metadata
from apps.kit.alembic_env import run_migrations

run_migrations(metadata)
