-- Revocations move to an insert-only table, so that no write path the schema
-- can stop brings a revoked token back: not an upsert, not changing a row's
-- id and inserting the old id again, not TRUNCATE. DDL, and a superuser's
-- `session_replication_role = replica`, are outside what a schema can
-- refuse: keep them away from the application's role.
CREATE TABLE IF NOT EXISTS tower_pat_revocations (
    id         BIGINT PRIMARY KEY,             -- a token id, revoked for good
    revoked_at BIGINT NOT NULL
);
INSERT INTO tower_pat_revocations (id, revoked_at)
    SELECT id, revoked_at FROM tower_pat_tokens WHERE revoked_at IS NOT NULL
    ON CONFLICT (id) DO NOTHING;

DROP TRIGGER IF EXISTS tower_pat_tokens_guard_update ON tower_pat_tokens;
DROP TRIGGER IF EXISTS tower_pat_tokens_guard_delete ON tower_pat_tokens;
DROP FUNCTION IF EXISTS tower_pat_guard_revoked();
ALTER TABLE tower_pat_tokens DROP COLUMN IF EXISTS revoked_at;

-- Refuses the statement with the reason given as the trigger's argument.
CREATE OR REPLACE FUNCTION tower_pat_refuse() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'tower_pat: %', TG_ARGV[0];
END;
$$ LANGUAGE plpgsql;

-- Refuses inserting a revoked id, and deleting a revoked token (audit).
CREATE OR REPLACE FUNCTION tower_pat_guard_revoked_id() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM tower_pat_revocations WHERE id = NEW.id) THEN
            RAISE EXCEPTION 'tower_pat: this token id was revoked';
        END IF;
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM tower_pat_revocations WHERE id = OLD.id) THEN
        RAISE EXCEPTION 'tower_pat: revoked tokens are kept';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS tower_pat_revocations_no_update ON tower_pat_revocations;
CREATE TRIGGER tower_pat_revocations_no_update
    BEFORE UPDATE ON tower_pat_revocations
    FOR EACH ROW EXECUTE FUNCTION tower_pat_refuse('revocation is irreversible');

DROP TRIGGER IF EXISTS tower_pat_revocations_no_delete ON tower_pat_revocations;
CREATE TRIGGER tower_pat_revocations_no_delete
    BEFORE DELETE ON tower_pat_revocations
    FOR EACH ROW EXECUTE FUNCTION tower_pat_refuse('revocations are kept');

DROP TRIGGER IF EXISTS tower_pat_revocations_no_truncate ON tower_pat_revocations;
CREATE TRIGGER tower_pat_revocations_no_truncate
    BEFORE TRUNCATE ON tower_pat_revocations
    FOR EACH STATEMENT EXECUTE FUNCTION tower_pat_refuse('revocations are kept');

DROP TRIGGER IF EXISTS tower_pat_tokens_no_truncate ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_no_truncate
    BEFORE TRUNCATE ON tower_pat_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION tower_pat_refuse('tokens are kept: delete rows instead');

DROP TRIGGER IF EXISTS tower_pat_tokens_id_is_fixed ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_id_is_fixed
    BEFORE UPDATE OF id ON tower_pat_tokens
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION tower_pat_refuse('a token id never changes');

DROP TRIGGER IF EXISTS tower_pat_tokens_no_revoked_id ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_no_revoked_id
    BEFORE INSERT OR DELETE ON tower_pat_tokens
    FOR EACH ROW EXECUTE FUNCTION tower_pat_guard_revoked_id();
