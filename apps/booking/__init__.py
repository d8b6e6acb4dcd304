"""Booking service: seat holds that never oversell, idempotent bookings, expiry, and the booking
saga's state machine.

Keeps its own per-event inventory, built only from the events service's messages; reserves seats
with one conditional statement; moves bookings through ``pending`` → ``confirmed`` /
``cancelled`` / ``expired`` as payment and event messages arrive; publishes every transition
through the outbox. Layout (the same in every service): ``domain`` (the model and its rules),
``handlers`` (use cases), ``adapters`` (database), ``entrypoints`` (HTTP routes, bus subscribers,
the hold-expiry sweeper), ``bootstrap``.
"""
