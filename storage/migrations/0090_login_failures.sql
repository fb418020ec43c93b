-- name: failed logins shared by every API process
-- Failed logins of the last window (api/ratelimit.py), shared by every API process.

CREATE TABLE login_failures (
    kind  text NOT NULL CHECK (kind IN ('user', 'address')),
    key   text NOT NULL,
    at    double precision NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (kind, key, at);
CREATE INDEX login_failures_at ON login_failures (at);
