-- hop schema, SQLite. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE links (
    id              INTEGER PRIMARY KEY,
    slug            TEXT    NOT NULL UNIQUE,
    target          TEXT    NOT NULL,
    title           TEXT,
    tags            TEXT    NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    max_clicks      INTEGER,
    served          INTEGER NOT NULL DEFAULT 0,
    redirect_status INTEGER NOT NULL,
    disabled        INTEGER NOT NULL DEFAULT 0,
    owner_key       INTEGER,
    secret_hash     BLOB
);
CREATE INDEX links_owner ON links (owner_key, id);

CREATE TABLE link_tags (
    tag     TEXT    NOT NULL,
    link_id INTEGER NOT NULL,
    PRIMARY KEY (tag, link_id)
) WITHOUT ROWID;
CREATE INDEX link_tags_link ON link_tags (link_id);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    admin      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Raw clicks, keyed by event id so a replayed batch is stored once.
CREATE TABLE clicks (
    event_id      BLOB    PRIMARY KEY,
    link_id       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    bot           INTEGER NOT NULL,
    country       TEXT,
    city          TEXT,
    browser       TEXT    NOT NULL,
    os            TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    referrer_host TEXT,
    utm_source    TEXT,
    utm_medium    TEXT,
    utm_campaign  TEXT,
    visitor       INTEGER NOT NULL,
    region        TEXT    NOT NULL
) WITHOUT ROWID;
-- Covers raw edge scans, including distinct-visitor counts, without the table.
CREATE INDEX clicks_link_at ON clicks (link_id, at, bot, visitor);

-- Clicks per time bucket; res is the grain in minutes (1 or 15).
CREATE TABLE rollup_series (
    link_id INTEGER NOT NULL,
    res     INTEGER NOT NULL,
    bucket  INTEGER NOT NULL,
    bot     INTEGER NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (link_id, res, bucket, bot)
) WITHOUT ROWID;

-- Clicks per breakdown value; res is the grain in minutes (60, 1440 or 10080).
CREATE TABLE rollup_dims (
    link_id INTEGER NOT NULL,
    res     INTEGER NOT NULL,
    bucket  INTEGER NOT NULL,
    bot     INTEGER NOT NULL,
    dim     INTEGER NOT NULL,
    value   TEXT    NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (link_id, res, bucket, bot, dim, value)
) WITHOUT ROWID;

-- Visitors seen per link and UTC day, with their first click of that day: the
-- set that makes counts exact. A visitor counts in the bucket of that click.
CREATE TABLE visitors (
    link_id  INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    visitor  INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    bot      INTEGER NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
) WITHOUT ROWID;
CREATE INDEX visitors_first ON visitors (link_id, first_at, bot);

-- New visitors per bucket; res is the grain in minutes (60 or 1440).
CREATE TABLE rollup_visitors (
    link_id  INTEGER NOT NULL,
    res      INTEGER NOT NULL,
    bucket   INTEGER NOT NULL,
    bot      INTEGER NOT NULL,
    visitors INTEGER NOT NULL,
    PRIMARY KEY (link_id, res, bucket, bot)
) WITHOUT ROWID;
