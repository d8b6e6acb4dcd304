"""The auth service: accounts, JWTs the other services verify, ``user_registered`` messages.

Django + Django REST Framework (the one Django service of the platform), laid out like the
HackSoft Django Styleguide:

* ``config/``     settings split by concern (read from the environment), URLs, the ASGI entry point;
* ``accounts/``   the app: ``models``, ``services`` (writes), ``selectors`` (reads), ``apis``
                  (one class per operation, nested input/output serializers), tokens and keys;
* ``core/``       cross-cutting plumbing: problem details, health/readiness, start-up, client address;
* ``relay.py``    the FastStream app that relays the outbox to RabbitMQ (and documents it: AsyncAPI).

Run it: ``uvicorn auth.config.asgi:application --port 8001`` (HTTP, migrations at start-up and,
with ``OUTBOX_RELAY=true`` (default), the outbox relay in the same process), or the relay alone:
``python -m auth.relay``.
"""
