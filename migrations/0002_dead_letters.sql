-- 0002_dead_letters: incidents whose sync keeps failing. The watermark moves on
-- without them (so one bad record never freezes a pair); each is retried on its
-- own, from fresh reads of both sides, with a growing delay, and shown to
-- operators by `itsm-bridge links`.

CREATE TABLE dead_letters (
    pair          TEXT    NOT NULL,
    incident_id   TEXT    NOT NULL,
    -- The ticket, when the incident has one (a failed update rather than a create).
    ticket_key    TEXT,
    -- What failed last (`create_ticket`, `update_ticket`, …) and why.
    action        TEXT    NOT NULL,
    last_error    TEXT    NOT NULL,
    -- Failures in a row; the retry delay doubles with each.
    attempts      INTEGER NOT NULL,
    first_failed  TEXT    NOT NULL,
    last_failed   TEXT    NOT NULL,
    -- Not retried before this time.
    next_attempt  TEXT    NOT NULL,
    PRIMARY KEY (pair, incident_id)
);

CREATE INDEX dead_letters_due ON dead_letters (pair, next_attempt);
