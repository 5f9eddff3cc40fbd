-- Abuse reports from the public, for admins.
CREATE TABLE reports (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       TEXT   NOT NULL,
    link_id    BIGINT,
    reason     TEXT   NOT NULL,
    details    TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX reports_slug ON reports (slug);
