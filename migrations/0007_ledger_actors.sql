-- 0007_ledger_actors: who made the changes an entry carried, on the side they
-- came from (or the bridge, for its own writes): a JSON array of `Actor`
-- (bridge-core/src/ledger.rs), NULL on entries written before attribution
-- existed. The hash covers the actors (the canonical encoding's attribution
-- section), never this column's text. Adding a column leaves the append-only
-- triggers as they are.
ALTER TABLE ledger ADD COLUMN actors TEXT CHECK (actors IS NULL OR json_valid(actors));
