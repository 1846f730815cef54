-- A referral keeps the outcome of each move by the status it moved to
-- ({"accepted":{"bed_type":…},"transfer_booked":{…}}), where the single
-- outcome column kept only the latest and a transfer booking erased the bed
-- type accepted for.
ALTER TABLE referrals ADD COLUMN outcomes TEXT;

-- Every transition event carries the outcome of its move, so the outcomes
-- are rebuilt from the events, the latest move into each status winning.
-- Bookings made before the outcome keys followed the SPEC named the ward
-- "bed" and the time "transfer_at".
UPDATE referrals SET outcomes = (
	SELECT json_group_object(status, json(outcome))
	FROM (
		SELECT e.body->>'$.to' AS status,
			CASE WHEN e.body->>'$.to' = 'transfer_booked'
				THEN json_patch(json_remove(e.body->'$.outcome', '$.bed', '$.transfer_at'),
					json_object('ward', e.body->'$.outcome.bed', 'expected_at', e.body->'$.outcome.transfer_at'))
				ELSE e.body->'$.outcome'
			END AS outcome
		FROM events e
		WHERE e.referral_id = referrals.id
			AND e.kind = 'transition'
			AND json_type(e.body, '$.outcome') = 'object'
			AND e.body->'$.outcome' <> '{}'
			AND e.seq = (SELECT max(l.seq) FROM events l
				WHERE l.referral_id = e.referral_id AND l.kind = 'transition'
					AND l.body->>'$.to' = e.body->>'$.to'
					AND json_type(l.body, '$.outcome') = 'object')
	)
)
WHERE EXISTS (SELECT 1 FROM events e WHERE e.referral_id = referrals.id AND e.kind = 'transition'
	AND json_type(e.body, '$.outcome') = 'object' AND e.body->'$.outcome' <> '{}');

-- A referral with an outcome but no event that explains it keeps it under
-- its current status.
UPDATE referrals SET outcomes = json_object(status, json(outcome))
WHERE outcomes IS NULL AND json_valid(outcome) AND json_type(outcome) = 'object' AND outcome <> '{}';

ALTER TABLE referrals DROP COLUMN outcome;
