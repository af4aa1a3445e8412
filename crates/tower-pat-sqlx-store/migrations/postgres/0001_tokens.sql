-- tower-pat token store (PostgreSQL). Times are microseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS tower_pat_tokens (
    id           BIGINT  PRIMARY KEY,          -- the token's non-secret 8-byte id
    digest       BYTEA   NOT NULL CHECK (octet_length(digest) = 32),
    owner        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,             -- space-separated
    preview      TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX IF NOT EXISTS tower_pat_tokens_owner ON tower_pat_tokens (owner);

CREATE TABLE IF NOT EXISTS tower_pat_owners (
    owner     TEXT PRIMARY KEY,
    suspended BOOLEAN NOT NULL DEFAULT FALSE
);

-- Revocation is irreversible: a revoked row can be neither un-revoked nor deleted.
CREATE OR REPLACE FUNCTION tower_pat_guard_revoked() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'tower_pat: revoked tokens are kept';
    END IF;
    IF NEW.revoked_at IS NULL OR NEW.revoked_at <> OLD.revoked_at THEN
        RAISE EXCEPTION 'tower_pat: revocation is irreversible';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS tower_pat_tokens_guard_update ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_guard_update
    BEFORE UPDATE OF revoked_at ON tower_pat_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
    EXECUTE FUNCTION tower_pat_guard_revoked();

DROP TRIGGER IF EXISTS tower_pat_tokens_guard_delete ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_guard_delete
    BEFORE DELETE ON tower_pat_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
    EXECUTE FUNCTION tower_pat_guard_revoked();
