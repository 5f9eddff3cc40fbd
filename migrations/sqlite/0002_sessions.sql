-- Web UI sessions, keyed by the SHA-256 of the cookie's session id.
CREATE TABLE sessions (
    id_hash    BLOB    PRIMARY KEY,
    data       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expiry ON sessions (expires_at);
