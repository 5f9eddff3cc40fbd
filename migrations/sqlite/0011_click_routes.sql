-- Smart links (issue 16): which way a link sent each visit, kept with its
-- click so that raw answers (exports, the raw reads the rollups are checked
-- against) agree with the rule and variant breakdowns. NULL for a link
-- without rules; `default` (no rule held) and `fallback` (sent to the
-- fallback URL) besides rule ids.
ALTER TABLE clicks ADD COLUMN route_rule TEXT;
ALTER TABLE clicks ADD COLUMN route_variant TEXT;
