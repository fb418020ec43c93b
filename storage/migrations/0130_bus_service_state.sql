-- name: the service state of each bus (in service, layover, out of service)
-- What the matcher made of each bus's latest fix: in_service, layover or out_of_service (NULL where it
-- was never matched): the live map shows a bus out of service as such.

ALTER TABLE bus_latest ADD COLUMN IF NOT EXISTS service_state text;
