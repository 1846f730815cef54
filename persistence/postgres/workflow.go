package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"patientpass/rooms"
)

// The workflow's state (rooms.WorkflowReader, rooms.WorkflowTx):
// notifications, system notices, OPEL levels, displays and the scheduler's
// queue of reminders.

const notificationColumns = `id, user_id, kind, referral_id, seq, at, title, read_at IS NOT NULL`

func scanNotification(row pgx.CollectableRow) (rooms.Notification, error) {
	var n rooms.Notification
	err := row.Scan(&n.ID, &n.UserID, &n.Kind, &n.ReferralID, &n.Seq, &n.At, &n.Title, &n.Read)
	n.At = utc(n.At)
	return n, err
}

// Notifications lists a user's notifications, newest (greatest id) first:
// at most f.Limit, 50 when it is not set, and never more than 500.
func (r reader) Notifications(ctx context.Context, userID string, f rooms.NotificationFilter) ([]rooms.Notification, error) {
	query := `SELECT ` + notificationColumns + ` FROM notifications WHERE user_id = $1`
	if f.UnreadOnly {
		query += ` AND read_at IS NULL`
	}
	query += ` ORDER BY id DESC LIMIT $2`
	rows, err := r.q.Query(ctx, query, userID, f.Size())
	if err != nil {
		return nil, fmt.Errorf("list notifications of user %s: %w", userID, err)
	}
	ns, err := pgx.CollectRows(rows, scanNotification)
	if err != nil {
		return nil, fmt.Errorf("list notifications of user %s: %w", userID, err)
	}
	return ns, nil
}

// UnreadNotifications counts a user's unread notifications.
func (r reader) UnreadNotifications(ctx context.Context, userID string) (int, error) {
	var n int
	err := r.q.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unread notifications of user %s: %w", userID, err)
	}
	return n, nil
}

// ReadMarkers returns the user's read markers in the referrals named, in
// one query; a referral without one is absent from the map.
func (r reader) ReadMarkers(ctx context.Context, userID string, referralIDs []string) (map[string]int64, error) {
	markers := make(map[string]int64, len(referralIDs))
	if len(referralIDs) == 0 {
		return markers, nil
	}
	rows, err := r.q.Query(ctx, `SELECT referral_id, seq FROM read_markers
		WHERE user_id = $1 AND referral_id = ANY($2)`, userID, referralIDs)
	if err != nil {
		return nil, fmt.Errorf("get read markers of user %s: %w", userID, err)
	}
	var (
		referralID string
		seq        int64
	)
	_, err = pgx.ForEachRow(rows, []any{&referralID, &seq}, func() error {
		markers[referralID] = seq
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get read markers of user %s: %w", userID, err)
	}
	return markers, nil
}

// SystemNotice returns the notice in force; rooms.ErrNotFound when none is.
func (r reader) SystemNotice(ctx context.Context) (rooms.SystemNotice, error) {
	var n rooms.SystemNotice
	err := r.q.QueryRow(ctx, `SELECT id, level, message, posted_by, posted_at FROM system_notices
		WHERE cleared_at IS NULL`).Scan(&n.ID, &n.Level, &n.Message, &n.PostedBy, &n.PostedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, fmt.Errorf("get system notice: %w", rooms.ErrNotFound)
	}
	if err != nil {
		return n, fmt.Errorf("get system notice: %w", err)
	}
	n.PostedAt = utc(n.PostedAt)
	return n, nil
}

// OPEL returns the organisation's level; rooms.ErrNotFound when never set.
func (r reader) OPEL(ctx context.Context, organisation string) (rooms.OPEL, error) {
	o := rooms.OPEL{Organisation: organisation}
	err := r.q.QueryRow(ctx, `SELECT level, note, set_at, set_by FROM opel_levels WHERE organisation = $1`,
		organisation).Scan(&o.Level, &o.Note, &o.SetAt, &o.SetBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.OPEL{}, fmt.Errorf("get OPEL level of %s: %w", organisation, rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.OPEL{}, fmt.Errorf("get OPEL level of %s: %w", organisation, err)
	}
	o.SetAt = utc(o.SetAt)
	return o, nil
}

const displayColumns = `id, organisation, name, token_hash, created_by, created_at, revoked_at`

func scanDisplay(row pgx.Row) (rooms.Display, error) {
	var d rooms.Display
	err := row.Scan(&d.ID, &d.Organisation, &d.Name, &d.TokenHash, &d.CreatedBy, &d.CreatedAt, &d.RevokedAt)
	d.CreatedAt, d.RevokedAt = utc(d.CreatedAt), utcPtr(d.RevokedAt)
	return d, err
}

// Display returns a display, revoked or not.
func (r reader) Display(ctx context.Context, id string) (rooms.Display, error) {
	d, err := scanDisplay(r.q.QueryRow(ctx, `SELECT `+displayColumns+` FROM displays WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.Display{}, fmt.Errorf("get display %s: %w", id, rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.Display{}, fmt.Errorf("get display %s: %w", id, err)
	}
	return d, nil
}

// DisplayByTokenHash returns the display holding the token, revoked or not.
func (r reader) DisplayByTokenHash(ctx context.Context, tokenHash string) (rooms.Display, error) {
	d, err := scanDisplay(r.q.QueryRow(ctx, `SELECT `+displayColumns+` FROM displays WHERE token_hash = $1`, tokenHash))
	if errors.Is(err, pgx.ErrNoRows) {
		// The hash is not in the error: it is as good as the token to
		// someone reading logs.
		return rooms.Display{}, fmt.Errorf("get display by token: %w", rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.Display{}, fmt.Errorf("get display by token: %w", err)
	}
	return d, nil
}

// Displays lists an organisation's displays, newest first, revoked ones
// included.
func (r reader) Displays(ctx context.Context, organisation string) ([]rooms.Display, error) {
	rows, err := r.q.Query(ctx, `SELECT `+displayColumns+` FROM displays WHERE organisation = $1
		ORDER BY created_at DESC, id DESC`, organisation)
	if err != nil {
		return nil, fmt.Errorf("list displays of %s: %w", organisation, err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Display, error) { return scanDisplay(row) })
	if err != nil {
		return nil, fmt.Errorf("list displays of %s: %w", organisation, err)
	}
	return ds, nil
}

// DueReminders returns up to limit ids of referrals whose reminder is at or
// before now, earliest first (then by id); limit <= 0 means no limit.
func (r reader) DueReminders(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := r.q.Query(ctx, `SELECT id FROM referrals WHERE reminder_at <= $1
		ORDER BY reminder_at, id LIMIT $2`, micro(now), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list due reminders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list due reminders: %w", err)
	}
	return ids, nil
}

// AddNotifications stores notifications in one statement, sent with the
// transaction's next statement or its commit; rooms.ErrDuplicate when an id
// is taken. A notification given as read is stored read now.
func (t *tx) AddNotifications(_ context.Context, ns []rooms.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	// One array per column, so the statement is the same whatever the
	// number of notifications.
	var (
		ids, users, kinds = make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns))
		referrals, titles = make([]string, len(ns)), make([]string, len(ns))
		seqs              = make([]int64, len(ns))
		ats               = make([]time.Time, len(ns))
		readAts           = make([]*time.Time, len(ns))
		now               = micro(time.Now())
	)
	for i, n := range ns {
		ids[i], users[i], kinds[i], referrals[i], titles[i] = n.ID, n.UserID, n.Kind, n.ReferralID, n.Title
		seqs[i], ats[i] = n.Seq, micro(n.At)
		if n.Read {
			readAts[i] = &now
		}
	}
	what := "add notification " + ns[0].ID
	if len(ns) > 1 {
		what = fmt.Sprintf("add %d notifications from %s", len(ns), ns[0].ID)
	}
	t.q.queueRow(notificationRows, []any{ids, users, kinds, referrals, seqs, ats, titles, readAts},
		func(_ pgconn.CommandTag, err error) error {
			if err != nil {
				return mapErr(err, what)
			}
			return nil
		})
	return nil
}

// notificationRows are the notifications of AddNotifications calls: one
// call's as arrays, one per column, so the statement is the same whatever
// their number, and several calls' as the same arrays joined.
var notificationRows = &rowKind{one: addNotificationsSQL, many: func(rows [][]any) (string, []any) {
	return addNotificationsSQL, []any{
		joinColumn[string](rows, 0), joinColumn[string](rows, 1), joinColumn[string](rows, 2), joinColumn[string](rows, 3),
		joinColumn[int64](rows, 4), joinColumn[time.Time](rows, 5), joinColumn[string](rows, 6), joinColumn[*time.Time](rows, 7),
	}
}}

const addNotificationsSQL = `INSERT INTO notifications (id, user_id, kind, referral_id, seq, at, title, read_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[],
		$7::text[], $8::timestamptz[])`

// markNotificationsRead locks the unread notifications it marks in id
// order before it marks them. An UPDATE alone would lock them in the order
// its plan finds them, which differs between an upTo (through the index,
// by id) and a list of ids (as stored), and two calls taking the same rows
// in different orders can deadlock. A call that waits for another's lock
// then finds the row read and skips it, so no notification is counted
// twice.
const markNotificationsRead = `WITH marked AS (
		SELECT id FROM notifications
		WHERE user_id = $1 AND read_at IS NULL AND (($2 <> '' AND id <= $2) OR id = ANY($3))
		ORDER BY id
		FOR UPDATE
	)
	UPDATE notifications n SET read_at = $4 FROM marked WHERE n.id = marked.id`

// MarkNotificationsRead marks read, at the store's clock (time.Now), the
// user's unread notifications with an id at or before upTo (when it is
// set) and those in ids, and returns how many it marked.
func (t *tx) MarkNotificationsRead(ctx context.Context, userID, upTo string, ids []string) (int, error) {
	if upTo == "" && len(ids) == 0 {
		return 0, nil
	}
	if ids == nil {
		ids = []string{}
	}
	tag, err := t.q.Exec(ctx, markNotificationsRead, userID, upTo, ids, micro(time.Now()))
	if err != nil {
		return 0, mapErr(err, "mark notifications of user "+userID+" read")
	}
	return int(tag.RowsAffected()), nil
}

// lockSystemNotice serialises the changes of the notice in force, which
// a partial unique index keeps to one: without it, two transactions
// replacing it at once would each clear the old one, and the second to
// insert would find the first one's notice in force and fail. The key is
// the schema's, so installations in other schemas do not wait on each
// other.
const lockSystemNotice = `SELECT pg_advisory_xact_lock(hashtextextended('patientpass.system_notice.' || current_schema(), 0))`

// PutSystemNotice puts n in force: the notice in force before it is
// cleared by n's poster at n's time, in one round trip.
func (t *tx) PutSystemNotice(ctx context.Context, n rooms.SystemNotice) error {
	at := micro(n.PostedAt)
	b := &pgx.Batch{}
	b.Queue(lockSystemNotice)
	b.Queue(`UPDATE system_notices SET cleared_at = $1, cleared_by = $2 WHERE cleared_at IS NULL`, at, n.PostedBy.ID)
	b.Queue(`INSERT INTO system_notices (id, level, message, posted_by, posted_at) VALUES ($1, $2, $3, $4, $5)`,
		n.ID, n.Level, n.Message, n.PostedBy, at)
	if err := t.q.SendBatch(ctx, b).Close(); err != nil {
		return mapErr(err, "put system notice "+n.ID)
	}
	return nil
}

// ClearSystemNotice ends the notice in force; rooms.ErrNotFound when none
// is.
func (t *tx) ClearSystemNotice(ctx context.Context, by string, at time.Time) error {
	b := &pgx.Batch{}
	b.Queue(lockSystemNotice)
	b.Queue(`UPDATE system_notices SET cleared_at = $1, cleared_by = $2 WHERE cleared_at IS NULL`, micro(at), by)
	br := t.q.SendBatch(ctx, b)
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mapErr(err, "clear system notice")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("clear system notice: %w", rooms.ErrNotFound)
	}
	return nil
}

// PutOPEL sets an organisation's level.
func (t *tx) PutOPEL(ctx context.Context, o rooms.OPEL) error {
	_, err := t.q.Exec(ctx, `INSERT INTO opel_levels (organisation, level, note, set_at, set_by) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (organisation) DO UPDATE SET level = excluded.level, note = excluded.note,
			set_at = excluded.set_at, set_by = excluded.set_by`,
		o.Organisation, o.Level, o.Note, micro(o.SetAt), o.SetBy)
	if err != nil {
		return mapErr(err, "put OPEL level of "+o.Organisation)
	}
	return nil
}

// CreateDisplay stores a new display; rooms.ErrDuplicate when the id or the
// token hash is taken.
func (t *tx) CreateDisplay(ctx context.Context, d rooms.Display) error {
	_, err := t.q.Exec(ctx, `INSERT INTO displays (`+displayColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		d.ID, d.Organisation, d.Name, d.TokenHash, d.CreatedBy, micro(d.CreatedAt), microPtr(d.RevokedAt))
	if err != nil {
		return mapErr(err, "create display "+d.ID)
	}
	return nil
}

// RevokeDisplay marks a display revoked at at; rooms.ErrNotFound when there
// is no such display or it is revoked already.
func (t *tx) RevokeDisplay(ctx context.Context, id string, at time.Time) error {
	tag, err := t.q.Exec(ctx, `UPDATE displays SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, micro(at))
	if err != nil {
		return mapErr(err, "revoke display "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke display %s: %w", id, rooms.ErrNotFound)
	}
	return nil
}
