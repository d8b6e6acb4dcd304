"""Payments service: charges a booking through a payment provider, refunds it when asked.

Learns what is due from ``booking_created`` (never from a client), forgets bookings that expired
or were cancelled, charges on ``POST /payments/process`` and refunds on ``refund_requested``.
Publishes ``payment_confirmed``, ``payment_failed`` and ``payment_refunded`` through the outbox.
Layout (the same in every service): ``domain`` (the model and its rules), ``handlers`` (use
cases), ``adapters`` (database, payment provider), ``entrypoints`` (HTTP routes, subscribers),
``bootstrap``.
"""
