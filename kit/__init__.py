"""The shared service kit: everything every service needs, written once.

settings      one ``ServiceSettings`` class read from the environment
problems      RFC 9457 problem-details errors and their FastAPI handlers
db            the service's own PostgreSQL database: create, migrate, connect, unit of work
outbox        transactional outbox table and the relay that publishes it with confirms
inbox         idempotent-consumer guard (a message delivered twice has its effect once)
idempotency   ``Idempotency-Key`` support for HTTP commands
messaging     broker construction (telemetry, ack policy, bounded retries) and consumers
security      JWT verification against the auth service's JWKS; current-user dependencies
service       the app factory that wires all of the above for one service
"""
