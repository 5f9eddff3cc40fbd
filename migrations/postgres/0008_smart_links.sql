-- Smart links (issue 16): a link's rules, as the API's JSON list of rules
-- (NULL: none), and the URL visits go to instead of the 410 page once the
-- link has expired, reached its click limit or been disabled.
ALTER TABLE links ADD COLUMN rules TEXT;
ALTER TABLE links ADD COLUMN fallback_url TEXT;
