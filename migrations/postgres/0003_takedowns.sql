-- Domains an admin has taken down: links to them (and their subdomains)
-- answer 410 and no new link may point there, until an admin lifts it.
CREATE TABLE takedowns (
    domain     TEXT   PRIMARY KEY,
    reason     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
