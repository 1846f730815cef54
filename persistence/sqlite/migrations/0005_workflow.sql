-- The automated workflow (SPEC §9): triage clocks, notifications, system
-- notices, OPEL levels and wallboard displays. Times are INTEGER
-- microseconds since the Unix epoch, UTC, as in 0001.

-- status_changed_at is when the referral entered its status; triaged_at when
-- its triage clock stopped; reminder_at when the scheduler next has a
-- reminder to raise for it. SQLite adds a NOT NULL column only with a
-- default; every insert sets it.
ALTER TABLE referrals ADD COLUMN status_changed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE referrals ADD COLUMN triaged_at INTEGER;
ALTER TABLE referrals ADD COLUMN reminder_at INTEGER;

-- A referral entered its status with the latest event that moved it there
-- (a transition to it, or its creation in it); updated_at for one whose
-- events do not say.
UPDATE referrals SET status_changed_at = coalesce((
	SELECT max(e.at) FROM events e
	WHERE e.referral_id = referrals.id
		AND ((e.kind = 'transition' AND e.body->>'$.to' = referrals.status)
			OR (e.kind = 'created' AND e.body->>'$.status' = referrals.status))
), updated_at);

-- The triage clock stopped at the first decision after the latest
-- submission; it still runs for a referral with none, and never ran for one
-- never submitted.
UPDATE referrals SET triaged_at = (
	SELECT min(e.at) FROM events e
	WHERE e.referral_id = referrals.id
		AND e.kind = 'transition'
		AND e.body->>'$.to' IN ('more_info_needed', 'accepted', 'managed_remotely', 'declined', 'cancelled')
		AND e.seq > (
			SELECT max(s.seq) FROM events s
			WHERE s.referral_id = referrals.id
				AND ((s.kind = 'transition' AND s.body->>'$.to' = 'submitted')
					OR (s.kind = 'created' AND s.body->>'$.status' = 'submitted'))
		)
);

-- Referrals waiting on someone are due for the scheduler at once: it works
-- out which reminder, if any, comes next and sets the real time itself.
UPDATE referrals SET reminder_at = coalesce(submitted_at, updated_at)
WHERE status IN ('submitted', 'in_triage');
UPDATE referrals SET reminder_at = updated_at
WHERE status = 'more_info_needed';

-- The scheduler's queue: only referrals with a reminder to come.
CREATE INDEX referrals_by_reminder ON referrals (reminder_at, id) WHERE reminder_at IS NOT NULL;
-- The board (one pathway's open referrals by deadline) and the wallboard
-- (one receiving organisation's, by status); the second replaces the index
-- on its first two columns.
CREATE INDEX referrals_by_pathway_status ON referrals (pathway_id, status, triage_due_at);
CREATE INDEX referrals_by_receiver_status ON referrals (receiving_organisation, status, triage_due_at);
DROP INDEX referrals_by_receiver;
-- The audit trail of an organisation takes in the referrals it refers.
CREATE INDEX referrals_by_referrer_organisation ON referrals (referring_organisation);

-- A user's notifications. Ids are fixed-width and sort in time order as
-- bytes (SQLite's BINARY collation).
CREATE TABLE notifications (
	id          TEXT PRIMARY KEY,
	user_id     TEXT NOT NULL REFERENCES users (id),
	kind        TEXT NOT NULL,
	referral_id TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	title       TEXT NOT NULL,
	read_at     INTEGER
) STRICT;
CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_unread_by_user ON notifications (user_id, id) WHERE read_at IS NULL;

-- Every system notice ever posted; the one in force is the one not cleared,
-- and there is at most one. posted_by is a rooms.Author as JSON.
CREATE TABLE system_notices (
	id         TEXT PRIMARY KEY,
	level      TEXT NOT NULL,
	message    TEXT NOT NULL,
	posted_by  TEXT NOT NULL,
	posted_at  INTEGER NOT NULL,
	cleared_at INTEGER,
	cleared_by TEXT
) STRICT;
CREATE UNIQUE INDEX system_notices_in_force ON system_notices ((1)) WHERE cleared_at IS NULL;

-- Each organisation's OPEL level as last set; set_by is a rooms.Author as
-- JSON.
CREATE TABLE opel_levels (
	organisation TEXT PRIMARY KEY REFERENCES organisations (ods),
	level        INTEGER NOT NULL,
	note         TEXT NOT NULL,
	set_at       INTEGER NOT NULL,
	set_by       TEXT NOT NULL
) STRICT;

-- Wall screens. A display is found by the hash of its token; the token
-- itself is never stored.
CREATE TABLE displays (
	id           TEXT PRIMARY KEY,
	organisation TEXT NOT NULL REFERENCES organisations (ods),
	name         TEXT NOT NULL,
	token_hash   TEXT NOT NULL UNIQUE,
	created_by   TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	revoked_at   INTEGER
) STRICT;
CREATE INDEX displays_by_organisation ON displays (organisation, created_at);

-- The wallboard reads an organisation's referrals of the last seven days.
CREATE INDEX referrals_receiving_updated_idx ON referrals (receiving_organisation, updated_at);
