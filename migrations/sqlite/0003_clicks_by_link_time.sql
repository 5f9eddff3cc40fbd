-- Raw clicks clustered by (link, time, event id): one B-tree instead of a
-- table plus an index, contiguous range scans for stats edges and exports.
-- A click keeps its time for good, so this key is as unique as the event id
-- alone: a replayed click has the same (link, time, event id).
CREATE TABLE clicks_new (
    link_id       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    event_id      BLOB    NOT NULL,
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
    region        TEXT    NOT NULL,
    PRIMARY KEY (link_id, at, event_id)
) WITHOUT ROWID;
INSERT INTO clicks_new
    SELECT link_id, at, event_id, bot, country, city, browser, os, device, referrer_host,
           utm_source, utm_medium, utm_campaign, visitor, region
    FROM clicks;
DROP TABLE clicks;
ALTER TABLE clicks_new RENAME TO clicks;
