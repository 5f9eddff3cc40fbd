-- Abuse reports from the public, for admins.
CREATE TABLE reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slug       TEXT    NOT NULL,
    link_id    INTEGER,
    reason     TEXT    NOT NULL,
    details    TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX reports_slug ON reports (slug);
