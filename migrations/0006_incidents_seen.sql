-- 0006_incidents_seen: per pair, each incident as the bridge last read it (a
-- poll or a sweep), without its comments and tags. A template is rendered from
-- the incident's values, which the baseline does not keep (it keeps what the
-- template rendered), so `mapping impact` and a reload's remap render an edited
-- template from these, with no remote call. Kept by every poll and sweep.
CREATE TABLE incidents_seen (
    pair        TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    -- serde_json of the `IncidentSnapshot`, comments and tags emptied.
    snapshot    TEXT NOT NULL CHECK (json_valid(snapshot)),
    PRIMARY KEY (pair, incident_id)
) WITHOUT ROWID;
