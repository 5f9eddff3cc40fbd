-- A/B test stats per variant (issue 16): a click that took a split's
-- variant is counted a second time, in the rollups only, under its
-- variant's segment id (negative, derived from the link and the variant),
-- so every stats answer can be asked of one variant. This lists each
-- link's segments, so that deleting a link (or its clicks) finds them.
CREATE TABLE link_segments (
    link_id    BIGINT NOT NULL,
    segment_id BIGINT NOT NULL,
    PRIMARY KEY (link_id, segment_id)
);
