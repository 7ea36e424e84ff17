-- 0003_ledger_actors: who made the changes an entry carried (see the SQLite
-- store's 0007_ledger_actors.sql): a JSON array of `Actor` as text, NULL on
-- entries written before attribution existed. `ledger list --actor` reads it as
-- jsonb. Adding a column leaves the append-only triggers as they are.
ALTER TABLE ledger ADD COLUMN actors TEXT;
