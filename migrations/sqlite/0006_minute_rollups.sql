-- Stats from rollups alone (docs/architecture.md, "Stats"): breakdowns and
-- visitors gain a minute grain (res 1, kept for a recent window and pruned
-- after) and trade the hour grain (res 60) for the quarter hour (res 15),
-- so that every range, in every zone (all UTC offsets are multiples of 15
-- minutes), is a sum of buckets; and all-time totals get a row per link.

-- Hours whose raw clicks are all still stored are rebuilt from them; an
-- hour whose raw clicks went to retention keeps its counts, at its first
-- quarter. "All stored": the hour's browser rows (every click has one) add
-- up to the raw clicks of that hour.
CREATE TEMP TABLE whole_hours AS
SELECT h.link_id, h.bucket, h.bot FROM (
    SELECT link_id, bucket, bot, SUM(clicks) AS n FROM rollup_dims
    WHERE res = 60 AND dim = 4 GROUP BY link_id, bucket, bot
) h
WHERE h.n = (SELECT COUNT(*) FROM clicks c
             WHERE c.link_id = h.link_id AND c.bot = h.bot
               AND c.at >= h.bucket AND c.at < h.bucket + 3600000);

DELETE FROM rollup_dims
WHERE res = 60 AND EXISTS (SELECT 1 FROM whole_hours w
    WHERE w.link_id = rollup_dims.link_id AND w.bucket = rollup_dims.bucket
      AND w.bot = rollup_dims.bot);
UPDATE rollup_dims SET res = 15 WHERE res = 60;

-- Quarter hours of whole hours, and minutes of the last three days, from raw
-- clicks (each dimension's value as `raw_dimension` in src/store/sql/mod.rs
-- has it).
WITH c AS (
    SELECT c.* FROM clicks c JOIN whole_hours w
      ON w.link_id = c.link_id AND w.bot = c.bot
     AND c.at >= w.bucket AND c.at < w.bucket + 3600000
),
v AS (
    SELECT link_id, at, bot, 1 AS dim, COALESCE(country, 'unknown') AS value FROM c
    UNION ALL SELECT link_id, at, bot, 2,
        CASE WHEN city IS NULL THEN 'unknown'
             WHEN country IS NULL THEN city
             ELSE city || ', ' || country END FROM c
    UNION ALL SELECT link_id, at, bot, 3, COALESCE(referrer_host, 'direct') FROM c
    UNION ALL SELECT link_id, at, bot, 4, browser FROM c
    UNION ALL SELECT link_id, at, bot, 5, os FROM c
    UNION ALL SELECT link_id, at, bot, 6, device FROM c
    UNION ALL SELECT link_id, at, bot, 7, utm_source FROM c WHERE utm_source IS NOT NULL
    UNION ALL SELECT link_id, at, bot, 8, utm_medium FROM c WHERE utm_medium IS NOT NULL
    UNION ALL SELECT link_id, at, bot, 9, utm_campaign FROM c WHERE utm_campaign IS NOT NULL
),
g AS (SELECT 15 AS res UNION ALL SELECT 1)
INSERT INTO rollup_dims (link_id, res, bucket, bot, dim, value, clicks)
SELECT v.link_id, g.res, (v.at / (g.res * 60000)) * (g.res * 60000), v.bot, v.dim, v.value, COUNT(*)
FROM v CROSS JOIN g
WHERE g.res = 15 OR v.at >= (CAST(strftime('%s', 'now') AS INTEGER) - 3 * 86400) * 1000
GROUP BY 1, 2, 3, 4, 5, 6;
DROP TABLE whole_hours;

-- Visitors: every visitor's first click is kept (`visitors`), so both new
-- grains are rebuilt exactly.
DELETE FROM rollup_visitors WHERE res = 60;
INSERT INTO rollup_visitors (link_id, res, bucket, bot, visitors)
SELECT link_id, g.res, (first_at / (g.res * 60000)) * (g.res * 60000), bot, COUNT(*)
FROM visitors CROSS JOIN (SELECT 15 AS res UNION ALL SELECT 1) g
WHERE g.res = 15 OR first_at >= (CAST(strftime('%s', 'now') AS INTEGER) - 3 * 86400) * 1000
GROUP BY 1, 2, 3, 4;

-- All-time clicks per link, humans and bots apart: what link listings and
-- the live dashboard's totals read, one row each.
CREATE TABLE link_totals (
    link_id INTEGER NOT NULL,
    bot     INTEGER NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (link_id, bot)
) WITHOUT ROWID;
INSERT INTO link_totals (link_id, bot, clicks)
SELECT link_id, bot, SUM(clicks) FROM rollup_series WHERE res = 15 GROUP BY link_id, bot;
