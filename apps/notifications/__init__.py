"""Notifications service: tells users what happened to their account, bookings and payments.

Consumes ``user_registered`` (keeps the contact: e-mail, name, phone), the booking and payment
lifecycle messages, ``event_cancelled`` (tells the organizer) and the ``notifications`` command
channel. Every notification is first *stored* (status ``pending``) in the unit of work of the
message that caused it, unique per (source message, kind, channel); a background delivery worker
sends stored notifications (e-mail over SMTP, SMS and push through provider interfaces) and
records the outcome with bounded, backed-off retries. So a message delivered twice sends once.

Contact details come only from user_registered messages (never from the auth database). A
notification for a user whose contact is not known yet (messages on different queues can
overtake each other) is stored as ``pending_contact``; the delivery worker addresses it, and
renders it again by name, as soon as the contact arrives, or marks it ``failed`` after
``CONTACT_WAIT_SECONDS`` (default 24 h). It waits as an e-mail; an SMS joins it when the
arriving contact has a phone (for the kinds that go by SMS).

Layout (the same in every service): ``domain`` (the notification and its rules), ``templates``
(subject and body per kind and channel), ``handlers`` (use cases), ``adapters`` (database,
channel senders), ``entrypoints`` (HTTP routes, message subscribers, the delivery worker),
``bootstrap``.
"""
