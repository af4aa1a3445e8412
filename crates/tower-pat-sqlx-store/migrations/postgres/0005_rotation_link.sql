-- The token a rotation replaced, kept on its successor: listings tell a
-- rotation's grace from two tokens that merely share a name. Rows from
-- before keep NULL. The index serves the one-live-token-per-name check.
ALTER TABLE tower_pat_tokens ADD COLUMN IF NOT EXISTS rotated_from BIGINT;
CREATE INDEX IF NOT EXISTS tower_pat_tokens_owner_name ON tower_pat_tokens (owner, name);
