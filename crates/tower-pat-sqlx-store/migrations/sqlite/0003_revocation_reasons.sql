-- Why a token was revoked (`manual`, `leaked`, `rotation_grace_ended`) and,
-- for a leak report, where the token was found. Rows revoked before this
-- migration keep NULL: their reason was not recorded.
ALTER TABLE tower_pat_revocations ADD COLUMN reason TEXT;
ALTER TABLE tower_pat_revocations ADD COLUMN url TEXT;
