-- hop schema, PostgreSQL. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE links (
    id              BIGINT   PRIMARY KEY,
    slug            TEXT     NOT NULL UNIQUE,
    target          TEXT     NOT NULL,
    title           TEXT,
    tags            TEXT     NOT NULL DEFAULT '[]',
    created_at      BIGINT   NOT NULL,
    updated_at      BIGINT   NOT NULL,
    expires_at      BIGINT,
    max_clicks      BIGINT,
    served          BIGINT   NOT NULL DEFAULT 0,
    redirect_status SMALLINT NOT NULL,
    disabled        BOOLEAN  NOT NULL DEFAULT FALSE,
    owner_key       BIGINT,
    secret_hash     BYTEA
);
CREATE INDEX links_owner ON links (owner_key, id);

CREATE TABLE link_tags (
    tag     TEXT   NOT NULL,
    link_id BIGINT NOT NULL,
    PRIMARY KEY (tag, link_id)
);
CREATE INDEX link_tags_link ON link_tags (link_id);

CREATE TABLE api_keys (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BYTEA   NOT NULL UNIQUE,
    admin      BOOLEAN NOT NULL,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);

-- Raw clicks, clustered-by-key order for range scans; (link, time, event id)
-- is as unique as the event id, since a click keeps its time for good.
CREATE TABLE clicks (
    link_id       BIGINT  NOT NULL,
    at            BIGINT  NOT NULL,
    event_id      BYTEA   NOT NULL,
    bot           BOOLEAN NOT NULL,
    country       TEXT,
    city          TEXT,
    browser       TEXT    NOT NULL,
    os            TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    referrer_host TEXT,
    utm_source    TEXT,
    utm_medium    TEXT,
    utm_campaign  TEXT,
    visitor       BIGINT  NOT NULL,
    region        TEXT    NOT NULL,
    PRIMARY KEY (link_id, at, event_id)
);

CREATE TABLE rollup_series (
    link_id BIGINT  NOT NULL,
    res     INTEGER NOT NULL,
    bucket  BIGINT  NOT NULL,
    bot     BOOLEAN NOT NULL,
    clicks  BIGINT  NOT NULL,
    PRIMARY KEY (link_id, res, bucket, bot)
);

CREATE TABLE rollup_dims (
    link_id BIGINT   NOT NULL,
    res     INTEGER  NOT NULL,
    bucket  BIGINT   NOT NULL,
    bot     BOOLEAN  NOT NULL,
    dim     SMALLINT NOT NULL,
    value   TEXT     NOT NULL,
    clicks  BIGINT   NOT NULL,
    PRIMARY KEY (link_id, res, bucket, bot, dim, value)
);

CREATE TABLE visitors (
    link_id  BIGINT  NOT NULL,
    day      BIGINT  NOT NULL,
    visitor  BIGINT  NOT NULL,
    first_at BIGINT  NOT NULL,
    bot      BOOLEAN NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
);
CREATE INDEX visitors_first ON visitors (link_id, first_at, bot);

CREATE TABLE rollup_visitors (
    link_id  BIGINT  NOT NULL,
    res      INTEGER NOT NULL,
    bucket   BIGINT  NOT NULL,
    bot      BOOLEAN NOT NULL,
    visitors BIGINT  NOT NULL,
    PRIMARY KEY (link_id, res, bucket, bot)
);

CREATE TABLE sessions (
    id_hash    BYTEA  PRIMARY KEY,
    data       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
