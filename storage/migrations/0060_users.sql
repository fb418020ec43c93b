-- name: users and sessions

CREATE TABLE users (
    username       text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    role           text NOT NULL CHECK (role IN ('water_staff', 'transport_planner', 'admin')),
    password_hash  text NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Only a hash of each session token is stored: a copy of the table logs nobody in.
CREATE TABLE sessions (
    token_sha256  bytea PRIMARY KEY,
    username      text NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX alerts_state_opened ON alerts (state, opened_at DESC);
