-- 0004_synced_comments: which comments of a linked incident and ticket have been
-- carried across, so none is copied twice and the bridge's own copies are never
-- copied back. One row per comment, on either side: the original and its copy.

CREATE TABLE synced_comments (
    pair         TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    -- `i:` + the incident comment's fingerprint, or `t:` + the ticket comment's:
    -- the remote id where the API has one, else a hash of author, time and text.
    fingerprint  TEXT NOT NULL,
    PRIMARY KEY (pair, incident_id, fingerprint)
);
