-- name: dead letters: the payload's size as received
-- A dead letter keeps at most the first 64 KiB of its payload (ingest/deadletters.py). NULL on rows
-- written before this column (kept whole then).

ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_size bigint;
