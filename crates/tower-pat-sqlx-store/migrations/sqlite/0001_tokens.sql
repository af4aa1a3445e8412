-- tower-pat token store (SQLite). Times are microseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS tower_pat_tokens (
    id           INTEGER PRIMARY KEY,          -- the token's non-secret 8-byte id
    digest       BLOB    NOT NULL,             -- SHA-256 of the whole token
    owner        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,             -- space-separated
    preview      TEXT    NOT NULL,             -- e.g. nvl_live_a4f2…
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX IF NOT EXISTS tower_pat_tokens_owner ON tower_pat_tokens (owner);

CREATE TABLE IF NOT EXISTS tower_pat_owners (
    owner     TEXT PRIMARY KEY,
    suspended INTEGER NOT NULL DEFAULT 0
);

-- Revocation is irreversible: a revoked row can be neither un-revoked nor deleted
-- (deleting it would let the same id be inserted again).
CREATE TRIGGER IF NOT EXISTS tower_pat_tokens_no_unrevoke
BEFORE UPDATE OF revoked_at ON tower_pat_tokens
WHEN OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS NULL OR NEW.revoked_at <> OLD.revoked_at)
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: revocation is irreversible');
END;

CREATE TRIGGER IF NOT EXISTS tower_pat_tokens_no_delete_revoked
BEFORE DELETE ON tower_pat_tokens
WHEN OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'tower_pat: revoked tokens are kept');
END;

-- Change feed read by other processes' caches (revocations, suspensions,
-- shortened expiries). Old rows are pruned by the store.
CREATE TABLE IF NOT EXISTS tower_pat_changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT    NOT NULL,                    -- 'token' or 'owner'
    key  TEXT    NOT NULL,                    -- token id (hex) or owner id
    at   INTEGER NOT NULL
);
