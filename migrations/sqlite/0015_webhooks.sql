-- Webhooks (issue 17): endpoints, the outbox written in the same
-- transaction as what it describes (link changes, click batches), the
-- messages fanned out from it per endpoint, and every delivery attempt.
CREATE TABLE webhook_endpoints (
    id               TEXT    PRIMARY KEY,
    -- The key that registered it (whose links it sees); NULL: none left.
    owner_key        INTEGER,
    -- Registered by an admin for every link of the instance.
    instance_wide    INTEGER NOT NULL,
    url              TEXT    NOT NULL,
    description      TEXT,
    -- JSON array of event type names.
    events           TEXT    NOT NULL,
    -- Any click event wanted: the click writers look at this.
    wants_clicks     INTEGER NOT NULL,
    scope_tag        TEXT,
    -- JSON array of slugs, or NULL.
    scope_links      TEXT,
    secret           TEXT    NOT NULL,
    previous_secret  TEXT,
    previous_until   INTEGER,
    enabled          INTEGER NOT NULL,
    disabled_reason  TEXT,
    failing_since    INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_clicks ON webhook_endpoints (wants_clicks);

CREATE TABLE webhook_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    body       BLOB    NOT NULL,
    -- The fan-out that took it, until when.
    claimed_by    TEXT,
    claimed_until INTEGER
);

CREATE TABLE webhook_messages (
    endpoint_id   TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    -- When the first event in it happened (ms): replays of a range use it.
    at            INTEGER NOT NULL,
    events        INTEGER NOT NULL,
    body          TEXT    NOT NULL,
    -- pending, delivered or dead.
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- Retries go on until this (ms), then the message is dead-lettered.
    retry_until   INTEGER NOT NULL,
    next_at       INTEGER NOT NULL,
    lease_until   INTEGER,
    -- The worker holding the lease.
    leased_by     TEXT,
    last_status   INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    PRIMARY KEY (endpoint_id, id)
);
CREATE INDEX webhook_messages_due ON webhook_messages (endpoint_id, next_at) WHERE state = 'pending';
CREATE INDEX webhook_messages_at ON webhook_messages (endpoint_id, at);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    response    TEXT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_at ON webhook_attempts (at);
