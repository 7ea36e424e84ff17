-- 0001_init: the store's first schema: the mapping table (links), the polling
-- watermarks, the outbox of intended remote writes and the hash-chained ledger.
--
-- Migrations are append-only: never edit this file once released; change the
-- schema in 0002_..., 0003_... instead. The runner applies each file in one
-- transaction and records its number in `PRAGMA user_version`.
--
-- Conventions:
-- * Every timestamp is RFC 3339 UTC text with exactly six fractional digits and a
--   `Z` suffix (`2026-11-01T08:30:00.000000Z`), so text order is time order and
--   range filters can compare strings.
-- * Enumerations (`state`, `side`, `direction`, `outcome`, `kind`) are stored as
--   their snake_case names and validated when read, not by CHECK constraints:
--   SQLite cannot alter a CHECK without rebuilding the table, and rebuilding the
--   append-only ledger to admit a new outcome would be needlessly risky.

-- One row per incident of a `[[sync]]` pair that has a ticket.
CREATE TABLE links (
    -- The `[[sync]]` pair, `<source>-><ticket_system>`: a deployment may sync the
    -- same incident into several ticket systems, each with its own link.
    pair                TEXT    NOT NULL,
    -- The incident source's own id (Graph `id`, the Sentinel incident GUID).
    incident_id         TEXT    NOT NULL,
    -- What a person calls the incident, for `itsm-bridge links` and the dashboard.
    incident_display_id TEXT    NOT NULL,
    -- The portal link written into the ticket.
    incident_url        TEXT    NOT NULL,
    -- What people call the ticket (`SEC-42`, `INC0010042`); written back to the
    -- incident and used to find the link when the ticket side changes.
    ticket_key          TEXT    NOT NULL,
    -- The ticket system's API id (Jira's numeric id, a ServiceNow sys_id), which
    -- update calls need and which, unlike a Jira key, survives a project move.
    ticket_id           TEXT    NOT NULL,
    -- A browser link to the ticket, written back to the incident.
    ticket_url          TEXT    NOT NULL,
    -- `active` (kept in step) or `merged` (the incident was redirected into another
    -- one; its ticket is closed and no longer synced).
    state               TEXT    NOT NULL,
    -- The three-way-diff baseline: per mapped field, the values both sides last
    -- agreed on, as a JSON object (serde_json of `Baseline`). Without it a change
    -- cannot be attributed to one side, and the bridge's own writes would echo.
    baseline            TEXT    NOT NULL CHECK (json_valid(baseline)),
    -- 1 once the ticket key has been written back to the incident (tags and a
    -- comment), so a restart does not write it again.
    written_back        INTEGER NOT NULL CHECK (written_back IN (0, 1)),
    -- The modification times of each side the bridge last synced from: a snapshot
    -- not newer than these has nothing new to offer.
    incident_modified   TEXT    NOT NULL,
    ticket_modified     TEXT    NOT NULL,
    -- When the link was made and last changed, for operators and audits.
    created             TEXT    NOT NULL,
    updated             TEXT    NOT NULL,
    PRIMARY KEY (pair, incident_id)
);

-- A changed ticket is matched to its incident by key. Not UNIQUE: the engine, not
-- the schema, decides whether two incidents may share a ticket (a merge may
-- leave a source link pointing at the ticket its target adopted).
CREATE INDEX links_by_ticket ON links (pair, ticket_key);

-- The last modification time seen per pair and side; the next poll asks for what
-- changed since then (minus an overlap window).
CREATE TABLE watermarks (
    pair TEXT NOT NULL,
    -- `incidents` or `tickets`.
    side TEXT NOT NULL,
    at   TEXT NOT NULL,
    PRIMARY KEY (pair, side)
);

-- Remote writes the bridge has decided to make, committed before they are
-- attempted and deleted in the same transaction that records their effect
-- (link baseline + ledger). A row still here after a restart is a write whose
-- outcome is unknown and must be re-run idempotently.
CREATE TABLE outbox (
    -- AUTOINCREMENT so an id is never reused: a late `finish` for an old intent
    -- can never remove a newer one.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pair        TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    -- `create_ticket`, `update_ticket`, `update_incident`, …
    kind        TEXT NOT NULL,
    -- The planned action as JSON, so it can be re-run without re-planning.
    payload     TEXT NOT NULL,
    -- When the intent was committed: a pending create whose outcome is unknown
    -- waits out the ticket system's search-index lag measured from here.
    created     TEXT NOT NULL
);

-- The sync ledger: one row per action, hash-chained. `hash` is SHA-256 over
-- `prev_hash` and the canonical encoding of (seq, the record) defined in
-- bridge-core/src/ledger.rs, never over this row's text, so the chain does not
-- depend on how SQLite or serde_json lays out values.
CREATE TABLE ledger (
    -- 1, 2, 3, … without gaps: a gap is a deleted entry.
    seq         INTEGER PRIMARY KEY,
    time        TEXT NOT NULL,
    pair        TEXT NOT NULL,
    -- `to_ticket`, `to_incident`, or NULL for actions on the bridge's own state.
    direction   TEXT,
    -- `create_ticket`, `adopt_ticket`, `update_ticket`, `write_back`, …
    action      TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    -- NULL when the action happened before the incident had a ticket.
    ticket_key  TEXT,
    -- The fields changed, old -> new, as a JSON array of `FieldChange`.
    changes     TEXT NOT NULL CHECK (json_valid(changes)),
    -- `ok`, `failed` or `skipped`.
    outcome     TEXT NOT NULL,
    -- A human-readable note: the error of a failed write, why something was skipped.
    detail      TEXT,
    -- The hash of entry seq - 1 (64 zeros for seq 1).
    prev_hash   TEXT NOT NULL,
    -- SHA-256 hex of prev_hash and this entry's canonical encoding.
    hash        TEXT NOT NULL
);

-- `ledger list --pair` and `--incident` read one pair's or one incident's entries
-- in sequence order without scanning the whole ledger.
CREATE INDEX ledger_by_pair ON ledger (pair, seq);
CREATE INDEX ledger_by_incident ON ledger (incident_id, seq);

-- The ledger is append-only. These triggers stop accidental edits through SQL;
-- they do not stop someone who drops them or edits the file, which is what the
-- hash chain (`itsm-bridge ledger verify`) is for.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
