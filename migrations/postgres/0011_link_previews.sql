-- Link previews (issue 16): what chat apps' and social sites' preview bots
-- are shown instead of the redirect (title, description, image URL), as
-- JSON; NULL: they follow the redirect like everyone else.
ALTER TABLE links ADD COLUMN preview TEXT;
