"""Notifications service: tells users what happened to their account, bookings and payments.

Consumes ``user_registered`` (keeps the contact: e-mail, name, phone), the booking and payment
lifecycle messages, ``event_cancelled`` (tells the organizer) and the ``notifications`` command
channel. Every notification is first *stored* (status ``pending``) in the unit of work of the
message that caused it, unique per (source message, kind, channel); a background delivery worker
sends stored notifications (e-mail over SMTP, SMS and push through provider interfaces) and
records the outcome with bounded, backed-off retries. So a message delivered twice sends once.

Layout (the same in every service): ``domain`` (the notification and its rules), ``templates``
(subject and body per kind and channel), ``handlers`` (use cases), ``adapters`` (database,
channel senders), ``entrypoints`` (HTTP routes, message subscribers, the delivery worker),
``bootstrap``.
"""
