-- A reserved attempt (rooms.AttemptStore) is counted as a failure at once
-- and forgiven later if it succeeds, so its rows carry the reservation's id.
-- One reservation against several keys shares one id. Failures added by
-- AddLoginFailure have none.
ALTER TABLE login_failures ADD COLUMN id text;
CREATE INDEX login_failures_id_idx ON login_failures (id) WHERE id IS NOT NULL;
