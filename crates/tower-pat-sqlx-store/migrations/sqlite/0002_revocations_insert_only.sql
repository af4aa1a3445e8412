-- Revocations move to an insert-only table, so that no write path the schema
-- can stop brings a revoked token back: not `INSERT OR REPLACE` (whose
-- implicit delete fires no trigger), not changing a row's id and inserting the
-- old id again, not deleting every row. DDL (DROP TABLE, DROP TRIGGER) is
-- outside what a schema can refuse: keep it away from the application's role.
CREATE TABLE IF NOT EXISTS tower_pat_revocations (
    id         INTEGER PRIMARY KEY,           -- a token id, revoked for good
    revoked_at INTEGER NOT NULL
);
INSERT OR IGNORE INTO tower_pat_revocations (id, revoked_at)
    SELECT id, revoked_at FROM tower_pat_tokens WHERE revoked_at IS NOT NULL;

DROP TRIGGER IF EXISTS tower_pat_tokens_no_unrevoke;
DROP TRIGGER IF EXISTS tower_pat_tokens_no_delete_revoked;
ALTER TABLE tower_pat_tokens DROP COLUMN revoked_at;

-- A revocation is never changed or removed. (`INSERT OR REPLACE` into this
-- table can only rewrite the time of a revocation, never undo it.)
CREATE TRIGGER IF NOT EXISTS tower_pat_revocations_no_update
BEFORE UPDATE ON tower_pat_revocations
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: revocation is irreversible');
END;

CREATE TRIGGER IF NOT EXISTS tower_pat_revocations_no_delete
BEFORE DELETE ON tower_pat_revocations
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: revocations are kept');
END;

-- A token id never changes, and a revoked id is never inserted again (this
-- fires before `INSERT OR REPLACE` resolves its conflict).
CREATE TRIGGER IF NOT EXISTS tower_pat_tokens_id_is_fixed
BEFORE UPDATE OF id ON tower_pat_tokens
WHEN NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: a token id never changes');
END;

CREATE TRIGGER IF NOT EXISTS tower_pat_tokens_no_revoked_id
BEFORE INSERT ON tower_pat_tokens
WHEN EXISTS (SELECT 1 FROM tower_pat_revocations WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: this token id was revoked');
END;

-- Revoked tokens stay listed (audit).
CREATE TRIGGER IF NOT EXISTS tower_pat_tokens_no_delete_revoked
BEFORE DELETE ON tower_pat_tokens
WHEN EXISTS (SELECT 1 FROM tower_pat_revocations WHERE id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: revoked tokens are kept');
END;
