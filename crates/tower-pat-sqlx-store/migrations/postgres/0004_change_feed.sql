-- Feed format 2: the change feed moves into the database. A notification
-- carries no change any more, only "v2": a hint to read this table. Rows
-- are written by triggers on the token tables, in the transaction that
-- changes them, so:
--   * only a role that can write the token tables writes a change (this
--     table is no more readable or writable by others than the tokens);
--   * a change can never be lost after its commit, and every write path is
--     announced (the store's, a hand INSERT, a COPY);
--   * whoever can LISTEN no longer sees token ids or owners go by.
-- Writers take one transaction-scoped advisory lock before numbering a
-- change, so changes commit in `seq` order: a reader that has seen `seq`
-- N never later finds a committed change below N.
CREATE TABLE IF NOT EXISTS tower_pat_changes (
    seq  BIGSERIAL   PRIMARY KEY,
    kind TEXT        NOT NULL CHECK (kind IN ('token', 'owner', 'all')),
    key  TEXT        NOT NULL,
    at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Numbers the changes of one statement in `schema` and wakes its listeners
-- (a notification is delivered at commit, once per transaction). More
-- than 10,000 keys at once (a bulk load) is one 'all' change: every
-- instance flushes its cache and scans the ids again. The schema comes
-- from the trigger, never from the writer's search_path.
CREATE OR REPLACE FUNCTION tower_pat_note(schema TEXT, kind TEXT, keys TEXT[]) RETURNS void AS $$
BEGIN
    IF cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tower_pat_changes:' || schema));
    IF cardinality(keys) > 10000 THEN
        EXECUTE format('INSERT INTO %I.tower_pat_changes (kind, key) VALUES (''all'', '''')', schema);
    ELSE
        EXECUTE format('INSERT INTO %I.tower_pat_changes (kind, key) SELECT $1, k FROM unnest($2) AS k', schema)
            USING kind, keys;
    END IF;
    PERFORM pg_notify('tower_pat:' || schema, 'v2');
END;
$$ LANGUAGE plpgsql;

-- Statement triggers: rows inserted into the tokens or the revocations
-- (COPY included).
CREATE OR REPLACE FUNCTION tower_pat_note_new_ids() RETURNS trigger AS $$
BEGIN
    EXECUTE format('SELECT %I.tower_pat_note($1, ''token'', $2)', TG_TABLE_SCHEMA)
        USING TG_TABLE_SCHEMA, ARRAY(SELECT id::text FROM changed);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Row triggers: a token deleted or changed, an owner suspended or back.
CREATE OR REPLACE FUNCTION tower_pat_note_row() RETURNS trigger AS $$
DECLARE
    kind TEXT := TG_ARGV[0];
    key TEXT;
BEGIN
    IF kind = 'owner' THEN
        key := NEW.owner;
    ELSIF TG_OP = 'DELETE' THEN
        key := OLD.id::text;
    ELSE
        key := NEW.id::text;
    END IF;
    EXECUTE format('SELECT %I.tower_pat_note($1, $2, $3)', TG_TABLE_SCHEMA)
        USING TG_TABLE_SCHEMA, kind, ARRAY[key];
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS tower_pat_tokens_note_insert ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_note_insert
    AFTER INSERT ON tower_pat_tokens
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tower_pat_note_new_ids();

DROP TRIGGER IF EXISTS tower_pat_revocations_note ON tower_pat_revocations;
CREATE TRIGGER tower_pat_revocations_note
    AFTER INSERT ON tower_pat_revocations
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tower_pat_note_new_ids();

DROP TRIGGER IF EXISTS tower_pat_tokens_note_delete ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_note_delete
    AFTER DELETE ON tower_pat_tokens
    FOR EACH ROW EXECUTE FUNCTION tower_pat_note_row('token');

DROP TRIGGER IF EXISTS tower_pat_tokens_note_update ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_note_update
    AFTER UPDATE OF expires_at, digest, owner, scopes ON tower_pat_tokens
    FOR EACH ROW EXECUTE FUNCTION tower_pat_note_row('token');

DROP TRIGGER IF EXISTS tower_pat_owners_note ON tower_pat_owners;
CREATE TRIGGER tower_pat_owners_note
    AFTER INSERT OR UPDATE ON tower_pat_owners
    FOR EACH ROW EXECUTE FUNCTION tower_pat_note_row('owner');
