"""Analytics service: counts what happens on the platform and reports it to organizers and admins.

Consumes the ``analytics`` channel (every event, booking and payment fact) into its own read
model (one row per event, per booking and per payment, each transition stamped once), and
answers ``GET /analytics/report`` (JSON or CSV) and ``GET /analytics/report/daily``. Publishes
nothing. Layout (the same in every service): ``domain`` (the model and its rules), ``handlers``
(use cases), ``adapters`` (database), ``entrypoints`` (HTTP routes, message subscriber),
``bootstrap``.
"""
