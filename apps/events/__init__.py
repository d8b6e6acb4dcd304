"""Events service: organizers create, update and cancel events; everyone can browse them.

Publishes ``event_created``, ``event_updated`` and ``event_cancelled`` (full snapshots) through
the outbox. Layout (the same in every service): ``domain`` (the model and its rules),
``handlers`` (use cases), ``adapters`` (database), ``entrypoints`` (HTTP routes), ``bootstrap``.
"""
