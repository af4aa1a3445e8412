-- Per-token limits (tower-pat's `limit` module), in their text forms:
--   rate_limit   '600/min burst 100'            (NULL: no budget of its own)
--   allowed_ips  '203.0.113.0/24, 2001:db8::/32' (NULL: any address)
-- and the client address of the last recorded use, personal data kept for
-- a bounded time (the store clears addresses older than 30 days when it
-- writes last uses; the partial index keeps that cheap).
-- A change of either limit is a change of the token, announced to every
-- instance's cache as changes of its expiry are.
ALTER TABLE tower_pat_tokens ADD COLUMN IF NOT EXISTS rate_limit TEXT;
ALTER TABLE tower_pat_tokens ADD COLUMN IF NOT EXISTS allowed_ips TEXT;
ALTER TABLE tower_pat_tokens ADD COLUMN IF NOT EXISTS last_used_ip TEXT;
CREATE INDEX IF NOT EXISTS tower_pat_tokens_used_from
    ON tower_pat_tokens (last_used_at) WHERE last_used_ip IS NOT NULL;

DROP TRIGGER IF EXISTS tower_pat_tokens_note_update ON tower_pat_tokens;
CREATE TRIGGER tower_pat_tokens_note_update
    AFTER UPDATE OF expires_at, digest, owner, scopes, rate_limit, allowed_ips ON tower_pat_tokens
    FOR EACH ROW EXECUTE FUNCTION tower_pat_note_row('token');
