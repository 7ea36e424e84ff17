-- 0001_init (PostgreSQL): the store's schema for replicas sharing one database,
-- the same tables as the SQLite store reached at its 0005, plus the leases that
-- decide which replica drives which `[[sync]]` pair.
--
-- Migrations are append-only: never edit this file once released; change the
-- schema in 0002_..., 0003_... instead. The runner applies each file in one
-- transaction, under an advisory lock (two replicas starting at once migrate
-- once), and records its number in `itsm_bridge_schema`.
--
-- Conventions, as on SQLite (so `store migrate` copies values as they are):
-- * Every timestamp the bridge writes is RFC 3339 UTC text with exactly six
--   fractional digits and a `Z` suffix, so text order is time order; a remote
--   modification time is kept exactly as the remote stamped it.
-- * Enumerations are stored as their snake_case names and validated when read.
-- * Lease times are `timestamptz` from the DATABASE's clock (`now()`), never a
--   replica's: replicas whose clocks disagree still agree on who holds a pair.

CREATE TABLE itsm_bridge_schema (
    -- One row: the number of migrations applied.
    version INTEGER NOT NULL
);
INSERT INTO itsm_bridge_schema (version) VALUES (0);

-- One row per incident of a `[[sync]]` pair that has a ticket (see the SQLite
-- migrations for what each column means).
CREATE TABLE links (
    pair                TEXT    NOT NULL,
    incident_id         TEXT    NOT NULL,
    incident_display_id TEXT    NOT NULL,
    incident_url        TEXT    NOT NULL,
    ticket_key          TEXT    NOT NULL,
    ticket_id           TEXT    NOT NULL,
    ticket_url          TEXT    NOT NULL,
    -- `active` or `merged`.
    state               TEXT    NOT NULL,
    -- The three-way-diff baseline as JSON text (serde_json of `Baseline`).
    baseline            TEXT    NOT NULL CHECK (baseline::jsonb IS NOT NULL),
    written_back        BOOLEAN NOT NULL,
    incident_modified   TEXT    NOT NULL,
    ticket_modified     TEXT    NOT NULL,
    created             TEXT    NOT NULL,
    updated             TEXT    NOT NULL,
    merged_into         TEXT,
    incident_version    TEXT,
    ticket_version      TEXT,
    PRIMARY KEY (pair, incident_id)
);
CREATE INDEX links_by_ticket ON links (pair, ticket_key);

CREATE TABLE watermarks (
    pair TEXT NOT NULL,
    side TEXT NOT NULL,
    at   TEXT NOT NULL,
    PRIMARY KEY (pair, side)
);

-- Remote writes decided and not yet recorded. An identity never reuses an id.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pair         TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created      TEXT NOT NULL,
    known_ticket TEXT
);

CREATE TABLE dead_letters (
    pair          TEXT    NOT NULL,
    incident_id   TEXT    NOT NULL,
    ticket_key    TEXT,
    action        TEXT    NOT NULL,
    last_error    TEXT    NOT NULL,
    attempts      INTEGER NOT NULL,
    first_failed  TEXT    NOT NULL,
    last_failed   TEXT    NOT NULL,
    next_attempt  TEXT    NOT NULL,
    PRIMARY KEY (pair, incident_id)
);
CREATE INDEX dead_letters_due ON dead_letters (pair, next_attempt);

CREATE TABLE synced_comments (
    pair         TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    PRIMARY KEY (pair, incident_id, fingerprint)
);

-- The sync ledger, hash-chained as on SQLite (bridge-core/src/ledger.rs). The
-- appends of all replicas are serialised by `LOCK TABLE ledger IN EXCLUSIVE
-- MODE` in the appending transaction, so the chain stays one chain.
CREATE TABLE ledger (
    seq         BIGINT PRIMARY KEY,
    time        TEXT NOT NULL,
    pair        TEXT NOT NULL,
    direction   TEXT,
    action      TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    ticket_key  TEXT,
    changes     TEXT NOT NULL CHECK (changes::jsonb IS NOT NULL),
    outcome     TEXT NOT NULL,
    detail      TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX ledger_by_pair ON ledger (pair, seq);
CREATE INDEX ledger_by_incident ON ledger (incident_id, seq);

-- The ledger is append-only: updates, deletes and TRUNCATE are refused. The
-- store refuses to open for writing when these triggers are missing, disabled
-- or changed; the hash chain catches what they cannot stop.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END
$$;
CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Fencing tokens: every new holder of a pair's lease gets a larger one.
CREATE SEQUENCE lease_tokens;

-- Which replica drives which pair, until when. A lease is taken or renewed by
-- one statement comparing `expires_at` with the database's `now()`; every
-- commit of a pair's outbox intent, baseline, watermark or ledger entry checks
-- (pair, holder, token) here, unexpired, in its own transaction.
CREATE TABLE leases (
    pair        TEXT        PRIMARY KEY,
    holder      TEXT        NOT NULL,
    token       BIGINT      NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- The replicas alive: each heartbeats its row; the pairs are divided among
-- those seen within one lease period.
CREATE TABLE replicas (
    holder     TEXT        PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL
);
