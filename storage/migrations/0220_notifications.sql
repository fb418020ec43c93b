-- name: notifications: subscriptions, alert events, outbox and delivery log

-- Each user's language and where their messages go. The webhook's signing secret is write-only:
-- the API never returns it, only whether one is set.
CREATE TABLE notification_profiles (
    username        text PRIMARY KEY REFERENCES users ON DELETE CASCADE,
    language        text NOT NULL DEFAULT 'vi' CHECK (language IN ('vi', 'en')),
    email           text CHECK (email IS NULL OR (length(email) <= 254 AND email ~ '^[^@\s<>,;"]+@[^@\s<>,;"]+$')),
    webhook_url     text CHECK (webhook_url IS NULL OR (length(webhook_url) <= 2000 AND webhook_url ~ '^https?://[^\s]+$')),
    webhook_secret  text CHECK (webhook_secret IS NULL OR length(webhook_secret) BETWEEN 16 AND 256),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What a user wants to hear about. NULL in domain, kind or subject_id means every one. The
-- 'changes' list gets every state change of a matching alert; the 'escalation' list only the
-- alerts left unacknowledged past their domain's and severity's time.
CREATE TABLE notification_subscriptions (
    subscription_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username         text NOT NULL REFERENCES users ON DELETE CASCADE,
    list             text NOT NULL DEFAULT 'changes' CHECK (list IN ('changes', 'escalation')),
    domain           text CHECK (domain IN ('water', 'transit')),
    kind             text CHECK (kind IS NULL OR length(kind) BETWEEN 1 AND 64),
    min_severity     text NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
    subject_id       text CHECK (subject_id IS NULL OR length(subject_id) BETWEEN 1 AND 64),
    channels         text[] NOT NULL DEFAULT '{email}'
                     CHECK (cardinality(channels) > 0 AND channels <@ ARRAY['email', 'webhook']),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_subscriptions_user ON notification_subscriptions (username);

-- The alert-change stream: one row per state change of an alert, written by a trigger on `alerts`
-- in the transaction that changed it (or, for 'overdue', by the notifier's escalation scan), with
-- the alert as it was then.
CREATE TABLE notification_events (
    event_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    event     text NOT NULL
              CHECK (event IN ('opened', 'escalated', 'cleared', 'acknowledged', 'resolved', 'overdue')),
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    alert     jsonb NOT NULL
);
CREATE INDEX notification_events_alert ON notification_events (alert_id, event_id);
CREATE INDEX notification_events_at ON notification_events (at);
-- An alert is escalated once.
CREATE UNIQUE INDEX notification_events_one_overdue ON notification_events (alert_id) WHERE event = 'overdue';

-- One message to one user over one channel, written with its event. Delivered in message_id order
-- per alert, user and channel.
CREATE TABLE notification_outbox (
    message_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES notification_events ON DELETE CASCADE,
    alert_id         bigint NOT NULL,
    username         text NOT NULL REFERENCES users ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target           text NOT NULL,
    language         text NOT NULL CHECK (language IN ('vi', 'en')),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_error       text,
    UNIQUE (event_id, username, channel)
);
CREATE INDEX notification_outbox_due ON notification_outbox (message_id) WHERE status = 'pending';
CREATE INDEX notification_outbox_order ON notification_outbox (alert_id, username, channel, message_id)
    WHERE status = 'pending';
CREATE INDEX notification_outbox_status ON notification_outbox (status, message_id DESC);

-- Every attempt to deliver a message, and how it went.
CREATE TABLE notification_deliveries (
    delivery_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   bigint NOT NULL REFERENCES notification_outbox ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL,
    duration_ms  integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    detail       text NOT NULL DEFAULT '' CHECK (length(detail) <= 1000)
);
CREATE INDEX notification_deliveries_message ON notification_deliveries (message_id, delivery_id);

CREATE FUNCTION notification_severity_rank(severity text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE severity WHEN 'info' THEN 1 WHEN 'warning' THEN 2 WHEN 'critical' THEN 3 ELSE 0 END
$$;

-- The alert as a message tells of it: no evidence beyond the route, and the last note bounded.
CREATE FUNCTION notification_snapshot(a alerts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'alert_id', a.alert_id, 'kind', a.kind, 'severity', a.severity,
        'subject_kind', a.subject_kind, 'subject_id', a.subject_id,
        'domain', CASE WHEN a.subject_kind = 'station' THEN 'water' ELSE 'transit' END,
        'route_id', CASE WHEN a.subject_kind = 'route' THEN a.subject_id ELSE a.evidence ->> 'route_id' END,
        'opened_at', a.opened_at, 'cleared_at', a.cleared_at, 'state', a.state,
        'acknowledged_by', a.acknowledged_by, 'resolved_by', a.resolved_by,
        'note', left(a.notes -> -1 ->> 'text', 500)
    )
$$;

-- The messages of one event: one per user and channel, whatever number of their subscriptions match.
CREATE FUNCTION notification_fan_out(p_event bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO notification_outbox (event_id, alert_id, username, channel, target, language)
    SELECT DISTINCT ON (s.username, c.channel)
           e.event_id, e.alert_id, s.username, c.channel,
           CASE c.channel WHEN 'email' THEN p.email ELSE p.webhook_url END, p.language
    FROM notification_events e
    JOIN notification_subscriptions s
      ON s.list = CASE WHEN e.event = 'overdue' THEN 'escalation' ELSE 'changes' END
    JOIN users u ON u.username = s.username AND u.enabled
    JOIN notification_profiles p ON p.username = s.username
    CROSS JOIN LATERAL unnest(s.channels) AS c (channel)
    WHERE e.event_id = p_event
      AND (s.domain IS NULL OR s.domain = e.alert ->> 'domain')
      AND (s.kind IS NULL OR s.kind = e.alert ->> 'kind')
      AND notification_severity_rank(e.alert ->> 'severity') >= notification_severity_rank(s.min_severity)
      AND (s.subject_id IS NULL OR s.subject_id = e.alert ->> 'subject_id'
           OR s.subject_id = e.alert ->> 'route_id')
      AND (CASE c.channel WHEN 'email' THEN p.email ELSE p.webhook_url END) IS NOT NULL
    ORDER BY s.username, c.channel
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('citysense_notifications', '');
    END IF;
    RETURN n;
END
$$;

-- Every state change of an alert, whoever makes it (the workers, the API, SQL), becomes an event and
-- its messages in the same transaction: a crash loses none, and a rolled-back change sends none.
CREATE FUNCTION notification_alert_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changes text[] := '{}';
    change text;
    snapshot jsonb;
    id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        changes := ARRAY['opened'];
    ELSE
        IF notification_severity_rank(NEW.severity) > notification_severity_rank(OLD.severity)
           AND NEW.cleared_at IS NULL THEN
            changes := changes || 'escalated'::text;
        END IF;
        IF OLD.cleared_at IS NULL AND NEW.cleared_at IS NOT NULL THEN
            changes := changes || 'cleared'::text;
        END IF;
        IF NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('acknowledged', 'resolved') THEN
            changes := changes || NEW.state;
        END IF;
    END IF;
    IF cardinality(changes) = 0 THEN
        RETURN NULL;
    END IF;
    snapshot := notification_snapshot(NEW);
    FOREACH change IN ARRAY changes LOOP
        INSERT INTO notification_events (alert_id, event, alert)
        VALUES (NEW.alert_id, change, snapshot) RETURNING event_id INTO id;
        PERFORM notification_fan_out(id);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_notify_insert AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION notification_alert_changed();
-- Only the columns of a state change: the workers' frequent evidence updates do not run it.
CREATE TRIGGER alerts_notify_update AFTER UPDATE OF severity, cleared_at, state ON alerts
    FOR EACH ROW
    WHEN (OLD.severity IS DISTINCT FROM NEW.severity OR OLD.cleared_at IS DISTINCT FROM NEW.cleared_at
          OR OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION notification_alert_changed();
