from kit.alembic_env import run_migrations
from apps.notifications.adapters.tables import metadata

run_migrations(metadata)
