-- Sealed breakdown buckets (docs/architecture.md, "Sealed buckets"): once a
-- bucket has closed, its breakdown rows (one per value) are moved into one
-- packed row per dimension, so a read decodes one row per bucket instead of
-- fetching thousands. Rows and packs add up; answers never depend on
-- whether a bucket was sealed.
CREATE TABLE rollup_packs (
    link_id BIGINT   NOT NULL,
    res     INTEGER  NOT NULL,
    bucket  BIGINT   NOT NULL,
    dim     SMALLINT NOT NULL,
    bot     BOOLEAN  NOT NULL,
    pack    BYTEA    NOT NULL,
    PRIMARY KEY (link_id, res, bucket, dim, bot)
);

-- The sealer's to-do list: buckets with breakdown rows, by closing time,
-- and how many rows were written to each since it was last sealed (an open
-- bucket with many is sealed so far, so that a read during a flood never
-- meets more than a few seconds of rows).
CREATE TABLE rollup_dirty (
    closes_at BIGINT  NOT NULL,
    link_id   BIGINT  NOT NULL,
    res       INTEGER NOT NULL,
    bucket    BIGINT  NOT NULL,
    pending   BIGINT  NOT NULL,
    PRIMARY KEY (closes_at, link_id, res, bucket)
);

-- Every bucket already there is sealed over the next minutes.
INSERT INTO rollup_dirty (closes_at, link_id, res, bucket, pending)
SELECT bucket + res * 60000::bigint, link_id, res, bucket, COUNT(*) FROM rollup_dims
GROUP BY link_id, res, bucket;
