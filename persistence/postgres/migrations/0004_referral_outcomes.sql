-- A referral keeps the outcome of each move by the status it moved to
-- ({"accepted":{"bed_type":…},"transfer_booked":{…}}), where the single
-- outcome column kept only the latest and a transfer booking erased the bed
-- type accepted for.
ALTER TABLE referrals ADD COLUMN outcomes jsonb;

-- Every transition event carries the outcome of its move, so the outcomes
-- are rebuilt from the events, the latest move into each status winning.
-- Bookings made before the outcome keys followed the SPEC named the ward
-- "bed" and the time "transfer_at".
UPDATE referrals r SET outcomes = o.outcomes
FROM (
	SELECT referral_id, jsonb_object_agg(status, outcome) AS outcomes
	FROM (
		SELECT DISTINCT ON (referral_id, body->>'to')
			referral_id,
			body->>'to' AS status,
			CASE WHEN body->>'to' = 'transfer_booked'
				THEN ((body->'outcome') - 'bed'::text - 'transfer_at'::text)
					|| jsonb_strip_nulls(jsonb_build_object('ward', body->'outcome'->'bed',
						'expected_at', body->'outcome'->'transfer_at'))
				ELSE body->'outcome'
			END AS outcome
		FROM events
		WHERE kind = 'transition'
			AND jsonb_typeof(body->'outcome') = 'object'
			AND body->'outcome' <> '{}'::jsonb
		ORDER BY referral_id, body->>'to', seq DESC
	) moves
	GROUP BY referral_id
) o
WHERE o.referral_id = r.id;

-- A referral with an outcome but no event that explains it keeps it under
-- its current status.
UPDATE referrals SET outcomes = jsonb_build_object(status, outcome)
WHERE outcomes IS NULL AND jsonb_typeof(outcome) = 'object' AND outcome <> '{}'::jsonb;

ALTER TABLE referrals DROP COLUMN outcome;
