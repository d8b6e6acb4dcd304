-- Run once by the postgres image on an empty data volume (docker-compose.yml mounts it into
-- /docker-entrypoint-initdb.d/). One database per service: no service reads another's tables.
-- The services also create their database at start-up if it is missing (same names: the
-- DATABASE_PREFIX "eb_" plus the service), so this only makes the layout visible up front.
CREATE DATABASE eb_auth;
CREATE DATABASE eb_events;
CREATE DATABASE eb_booking;
CREATE DATABASE eb_payments;
CREATE DATABASE eb_notifications;
CREATE DATABASE eb_analytics;
