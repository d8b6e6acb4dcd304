"""Typed messages of the Event Booking Platform: the single source of truth for the bus.

Every message that crosses a service boundary is one of the models in
:mod:`contracts.messages`; where it travels (exchanges, routing keys, queues, dead-lettering)
is declared once in :mod:`contracts.topology`.
"""
