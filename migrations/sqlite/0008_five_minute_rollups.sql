-- Breakdowns and visitors get a five-minute grain (res 5) beside the minute
-- (docs/architecture.md, "Stats: exact answers from rollups alone"): a
-- range's minute edge (up to 14 minutes) then reads at most 4 minutes and 2
-- five-minute buckets. Kept, like the minutes, only for the recent window,
-- so they are summed from the minute rows, which cover it exactly.
INSERT INTO rollup_dims (link_id, res, bucket, bot, dim, value, clicks)
SELECT link_id, 5, (bucket / 300000) * 300000, bot, dim, value, SUM(clicks)
FROM rollup_dims WHERE res = 1
GROUP BY link_id, (bucket / 300000) * 300000, bot, dim, value;

INSERT INTO rollup_visitors (link_id, res, bucket, bot, visitors)
SELECT link_id, 5, (bucket / 300000) * 300000, bot, SUM(visitors)
FROM rollup_visitors WHERE res = 1
GROUP BY link_id, (bucket / 300000) * 300000, bot;
