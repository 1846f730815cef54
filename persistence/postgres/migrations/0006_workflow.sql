-- The automated workflow (SPEC §9): triage clocks, notifications, system
-- notices, OPEL levels and wallboard displays.

-- status_changed_at is when the referral entered its status; triaged_at when
-- its triage clock stopped; reminder_at when the scheduler next has a
-- reminder to raise for it.
ALTER TABLE referrals
	ADD COLUMN status_changed_at timestamptz,
	ADD COLUMN triaged_at        timestamptz,
	ADD COLUMN reminder_at       timestamptz;

-- A referral entered its status with the latest event that moved it there
-- (a transition to it, or its creation in it); updated_at for one whose
-- events do not say.
UPDATE referrals r SET status_changed_at = coalesce((
	SELECT max(e.at) FROM events e
	WHERE e.referral_id = r.id
		AND ((e.kind = 'transition' AND e.body->>'to' = r.status)
			OR (e.kind = 'created' AND e.body->>'status' = r.status))
), r.updated_at);
ALTER TABLE referrals ALTER COLUMN status_changed_at SET NOT NULL;

-- The triage clock stopped at the first decision after the latest
-- submission; it still runs for a referral with none, and never ran for one
-- never submitted.
UPDATE referrals r SET triaged_at = d.at
FROM (
	SELECT e.referral_id, min(e.at) AS at
	FROM events e
	WHERE e.kind = 'transition'
		AND e.body->>'to' IN ('more_info_needed', 'accepted', 'managed_remotely', 'declined', 'cancelled')
		AND e.seq > (
			SELECT max(s.seq) FROM events s
			WHERE s.referral_id = e.referral_id
				AND ((s.kind = 'transition' AND s.body->>'to' = 'submitted')
					OR (s.kind = 'created' AND s.body->>'status' = 'submitted'))
		)
	GROUP BY e.referral_id
) d
WHERE d.referral_id = r.id;

-- Referrals waiting on someone are due for the scheduler at once: it works
-- out which reminder, if any, comes next and sets the real time itself.
UPDATE referrals SET reminder_at = coalesce(submitted_at, updated_at)
WHERE status IN ('submitted', 'in_triage');
UPDATE referrals SET reminder_at = updated_at
WHERE status = 'more_info_needed';

-- The scheduler's queue: only referrals with a reminder to come.
CREATE INDEX referrals_reminder_idx ON referrals (reminder_at, id) WHERE reminder_at IS NOT NULL;
-- The board (one pathway's open referrals by deadline) and the wallboard
-- (one receiving organisation's, by status).
CREATE INDEX referrals_board_idx ON referrals (pathway_id, status, triage_due_at);
CREATE INDEX referrals_receiving_status_idx ON referrals (receiving_organisation, status, triage_due_at);
-- The audit trail of an organisation takes in the referrals it refers.
CREATE INDEX referrals_referring_idx ON referrals (referring_organisation);

-- A user's notifications. Ids are fixed-width and sort in time order as
-- bytes; COLLATE "C" makes Postgres compare them as bytes too, as Go and
-- SQLite do, whatever the database's collation.
CREATE TABLE notifications (
	id          text COLLATE "C" PRIMARY KEY,
	user_id     text NOT NULL REFERENCES users (id),
	kind        text NOT NULL,
	referral_id text NOT NULL DEFAULT '',
	seq         bigint NOT NULL DEFAULT 0,
	at          timestamptz NOT NULL,
	title       text NOT NULL,
	read_at     timestamptz
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
CREATE INDEX notifications_unread_idx ON notifications (user_id, id) WHERE read_at IS NULL;

-- Every system notice ever posted; the one in force is the one not cleared,
-- and there is at most one.
CREATE TABLE system_notices (
	id         text PRIMARY KEY,
	level      text NOT NULL,
	message    text NOT NULL,
	posted_by  jsonb NOT NULL,
	posted_at  timestamptz NOT NULL,
	cleared_at timestamptz,
	cleared_by text
);
CREATE UNIQUE INDEX system_notices_in_force_idx ON system_notices ((true)) WHERE cleared_at IS NULL;

-- Each organisation's OPEL level as last set.
CREATE TABLE opel_levels (
	organisation text PRIMARY KEY,
	level        integer NOT NULL,
	note         text NOT NULL DEFAULT '',
	set_at       timestamptz NOT NULL,
	set_by       jsonb NOT NULL
);

-- Wall screens. A display is found by the hash of its token; the token
-- itself is never stored.
CREATE TABLE displays (
	id           text PRIMARY KEY,
	organisation text NOT NULL,
	name         text NOT NULL,
	token_hash   text NOT NULL UNIQUE,
	created_by   text NOT NULL DEFAULT '',
	created_at   timestamptz NOT NULL,
	revoked_at   timestamptz
);
CREATE INDEX displays_organisation_idx ON displays (organisation, created_at);

-- The wallboard reads an organisation's referrals of the last seven days.
CREATE INDEX referrals_receiving_updated_idx ON referrals (receiving_organisation, updated_at);
