-- Per-token limits (tower-pat's `limit` module), in their text forms:
--   rate_limit   '600/min burst 100'            (NULL: no budget of its own)
--   allowed_ips  '203.0.113.0/24, 2001:db8::/32' (NULL: any address)
-- and the client address of the last recorded use, personal data kept for
-- a bounded time (the store clears addresses older than 30 days when it
-- writes last uses; the partial index keeps that cheap).
ALTER TABLE tower_pat_tokens ADD COLUMN rate_limit TEXT;
ALTER TABLE tower_pat_tokens ADD COLUMN allowed_ips TEXT;
ALTER TABLE tower_pat_tokens ADD COLUMN last_used_ip TEXT;
CREATE INDEX IF NOT EXISTS tower_pat_tokens_used_from
    ON tower_pat_tokens (last_used_at) WHERE last_used_ip IS NOT NULL;
