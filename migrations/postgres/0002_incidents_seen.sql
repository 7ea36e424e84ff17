-- 0002_incidents_seen: per pair, each incident as the bridge last read it (a
-- poll or a sweep), without its comments and tags, for `mapping impact` and a
-- reload's remap to render an edited template from (see the SQLite store's
-- 0006_incidents_seen.sql). Values are encoded as on SQLite.
CREATE TABLE incidents_seen (
    pair        TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    snapshot    TEXT NOT NULL,
    PRIMARY KEY (pair, incident_id)
);
