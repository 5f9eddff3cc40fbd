-- Where each import stands (`hop import`): one row per imported source
-- link and per source's click cursor, so a second run adds nothing and an
-- interrupted one goes on where it stopped, even after retention deleted
-- the raw clicks whose event ids would otherwise have told.
CREATE TABLE import_marks (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
