-- 0005_versions: record versions, not only times. A record's changes are
-- ordered by the version its API offers (ServiceNow `sys_mod_count`, Sentinel
-- `etag`, a generic system's version field): ServiceNow's `sys_updated_on` has
-- whole seconds, and a business rule or an analyst often writes a record within
-- the second of the bridge's own write. NULL where the API has no version (or
-- for links made before this migration): the time alone decides, and an equal
-- time is compared by content.

ALTER TABLE links ADD COLUMN incident_version TEXT;
ALTER TABLE links ADD COLUMN ticket_version TEXT;

-- For a pending create: the newest ticket key the pair had linked when the
-- intent began. A ticket the create made, if it made one, comes after it, so a
-- ticket system with sequential keys (Jira) can look for it by key, which is
-- strongly consistent, instead of waiting for its search index.
ALTER TABLE outbox ADD COLUMN known_ticket TEXT;
