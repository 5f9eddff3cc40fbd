-- Password-protected links (issue 16): the argon2id hash (a PHC string,
-- with its salt and parameters) of the password a visitor must give; NULL
-- for a link anyone may follow.
ALTER TABLE links ADD COLUMN password_hash TEXT;
