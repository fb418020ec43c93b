-- name: analytics worker members and partition leases
-- Several `citysense analyze --fleet` processes share the work of one worker kind (`grp`: 'water',
-- 'transit') through leases (workers/lease.py). Each process is a member, with a heartbeat that
-- expires; each partition (a hash bucket of station id) has one lease row: its owner, until when,
-- and an epoch that every takeover raises. A worker writes results only in a transaction that holds
-- its partitions' lease rows locked and still finds them its own at the epoch it took them.

CREATE TABLE analytics_members (
    grp         text NOT NULL,
    member_id   text NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (grp, member_id)
);

CREATE TABLE analytics_leases (
    grp         text NOT NULL,
    bucket      integer NOT NULL CHECK (bucket >= 0),
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (grp, bucket)
);
CREATE INDEX analytics_leases_owner ON analytics_leases (grp, owner);
