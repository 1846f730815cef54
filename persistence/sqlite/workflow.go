package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"patientpass/rooms"
)

// The workflow's state (rooms.WorkflowReader, rooms.WorkflowTx):
// notifications, system notices, OPEL levels, displays and the scheduler's
// queue of reminders.

// Notifications lists a user's notifications, newest (greatest id) first:
// at most f.Limit, 50 when it is not set, and never more than 500.
func (r reader) Notifications(ctx context.Context, userID string, f rooms.NotificationFilter) ([]rooms.Notification, error) {
	q := `SELECT id, kind, referral_id, seq, at, title, read_at IS NOT NULL FROM notifications WHERE user_id = ?`
	if f.UnreadOnly {
		q += ` AND read_at IS NULL`
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := r.q.QueryContext(ctx, q, userID, f.Size())
	if err != nil {
		return nil, fmt.Errorf("list notifications of user %s: %w", userID, err)
	}
	defer rows.Close()
	var out []rooms.Notification
	for rows.Next() {
		n := rooms.Notification{UserID: userID}
		var when int64
		if err := rows.Scan(&n.ID, &n.Kind, &n.ReferralID, &n.Seq, &when, &n.Title, &n.Read); err != nil {
			return nil, fmt.Errorf("list notifications of user %s: %w", userID, err)
		}
		n.At = fromMicros(when)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notifications of user %s: %w", userID, err)
	}
	return out, nil
}

// UnreadNotifications counts a user's unread notifications.
func (r reader) UnreadNotifications(ctx context.Context, userID string) (int, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL`, userID).Scan(&n)
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
	idList, err := json.Marshal(referralIDs)
	if err != nil {
		return nil, fmt.Errorf("encode referral ids: %w", err)
	}
	rows, err := r.q.QueryContext(ctx, `SELECT referral_id, seq FROM read_markers
		WHERE user_id = ? AND referral_id IN (SELECT value FROM json_each(?))`, userID, string(idList))
	if err != nil {
		return nil, fmt.Errorf("get read markers of user %s: %w", userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			referralID string
			seq        int64
		)
		if err := rows.Scan(&referralID, &seq); err != nil {
			return nil, fmt.Errorf("get read markers of user %s: %w", userID, err)
		}
		markers[referralID] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get read markers of user %s: %w", userID, err)
	}
	return markers, nil
}

// SystemNotice returns the notice in force; rooms.ErrNotFound when none is.
func (r reader) SystemNotice(ctx context.Context) (rooms.SystemNotice, error) {
	var (
		n      rooms.SystemNotice
		author string
		posted int64
	)
	err := r.q.QueryRowContext(ctx, `SELECT id, level, message, posted_by, posted_at FROM system_notices
		WHERE cleared_at IS NULL`).Scan(&n.ID, &n.Level, &n.Message, &author, &posted)
	if err != nil {
		return rooms.SystemNotice{}, notFound(err, "get system notice")
	}
	if err := json.Unmarshal([]byte(author), &n.PostedBy); err != nil {
		return rooms.SystemNotice{}, fmt.Errorf("decode poster of system notice %s: %w", n.ID, err)
	}
	n.PostedAt = fromMicros(posted)
	return n, nil
}

// OPEL returns the organisation's level; rooms.ErrNotFound when never set.
func (r reader) OPEL(ctx context.Context, organisation string) (rooms.OPEL, error) {
	var (
		o      = rooms.OPEL{Organisation: organisation}
		author string
		set    int64
	)
	err := r.q.QueryRowContext(ctx, `SELECT level, note, set_at, set_by FROM opel_levels WHERE organisation = ?`,
		organisation).Scan(&o.Level, &o.Note, &set, &author)
	if err != nil {
		return rooms.OPEL{}, notFound(err, "get OPEL level of %s", organisation)
	}
	if err := json.Unmarshal([]byte(author), &o.SetBy); err != nil {
		return rooms.OPEL{}, fmt.Errorf("decode setter of OPEL level of %s: %w", organisation, err)
	}
	o.SetAt = fromMicros(set)
	return o, nil
}

const displayColumns = `id, organisation, name, token_hash, created_by, created_at, revoked_at`

func scanDisplay(row interface{ Scan(...any) error }) (rooms.Display, error) {
	var (
		d       rooms.Display
		created int64
		revoked sql.NullInt64
	)
	if err := row.Scan(&d.ID, &d.Organisation, &d.Name, &d.TokenHash, &d.CreatedBy, &created, &revoked); err != nil {
		return rooms.Display{}, err
	}
	d.CreatedAt, d.RevokedAt = fromMicros(created), fromNullMicros(revoked)
	return d, nil
}

// Display returns a display, revoked or not.
func (r reader) Display(ctx context.Context, id string) (rooms.Display, error) {
	d, err := scanDisplay(r.q.QueryRowContext(ctx, `SELECT `+displayColumns+` FROM displays WHERE id = ?`, id))
	if err != nil {
		return rooms.Display{}, notFound(err, "get display %s", id)
	}
	return d, nil
}

// DisplayByTokenHash returns the display holding the token, revoked or not.
func (r reader) DisplayByTokenHash(ctx context.Context, tokenHash string) (rooms.Display, error) {
	d, err := scanDisplay(r.q.QueryRowContext(ctx, `SELECT `+displayColumns+` FROM displays WHERE token_hash = ?`, tokenHash))
	if err != nil {
		// The hash is not in the error: it is as good as the token to
		// someone reading logs.
		return rooms.Display{}, notFound(err, "get display by token")
	}
	return d, nil
}

// Displays lists an organisation's displays, newest first, revoked ones
// included.
func (r reader) Displays(ctx context.Context, organisation string) ([]rooms.Display, error) {
	return queryAll(ctx, r.q, "list displays of "+organisation,
		func(rows *sql.Rows) (rooms.Display, error) { return scanDisplay(rows) },
		`SELECT `+displayColumns+` FROM displays WHERE organisation = ? ORDER BY created_at DESC, id DESC`, organisation)
}

// DueReminders returns up to limit ids of referrals whose reminder is at or
// before now, earliest first (then by id); limit <= 0 means no limit.
func (r reader) DueReminders(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := r.q.QueryContext(ctx, `SELECT id FROM referrals WHERE reminder_at <= ?
		ORDER BY reminder_at, id LIMIT ?`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("list due reminders: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list due reminders: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due reminders: %w", err)
	}
	return out, nil
}

// AddNotifications stores notifications; rooms.ErrDuplicate when an id is
// taken. A notification given as read is stored read now.
func (t *Tx) AddNotifications(ctx context.Context, ns []rooms.Notification) error {
	now := micros(time.Now())
	for _, n := range ns {
		var readAt sql.NullInt64
		if n.Read {
			readAt = sql.NullInt64{Int64: now, Valid: true}
		}
		_, err := t.tx.ExecContext(ctx, `INSERT INTO notifications (id, user_id, kind, referral_id, seq, at, title, read_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			n.ID, n.UserID, n.Kind, n.ReferralID, n.Seq, micros(n.At), n.Title, readAt)
		if isForeignKey(err) {
			return fmt.Errorf("add notification %s for user %s: %w", n.ID, n.UserID, rooms.ErrNotFound)
		}
		if err != nil {
			return mapWrite(err, "add notification %s for user %s", n.ID, n.UserID)
		}
	}
	return nil
}

// MarkNotificationsRead marks read, at the store's clock (time.Now), the
// user's unread notifications with an id at or before upTo (when it is
// set) and those in ids, and returns how many it marked. The transaction
// holds the write lock, so no other can mark them between the check and
// the count.
func (t *Tx) MarkNotificationsRead(ctx context.Context, userID, upTo string, ids []string) (int, error) {
	if upTo == "" && len(ids) == 0 {
		return 0, nil
	}
	if ids == nil {
		ids = []string{}
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return 0, fmt.Errorf("encode notification ids: %w", err)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE notifications SET read_at = ?
		WHERE user_id = ? AND read_at IS NULL
			AND ((? <> '' AND id <= ?) OR id IN (SELECT value FROM json_each(?)))`,
		micros(time.Now()), userID, upTo, upTo, string(idList))
	if err != nil {
		return 0, fmt.Errorf("mark notifications of user %s read: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mark notifications of user %s read: %w", userID, err)
	}
	return int(n), nil
}

// PutSystemNotice puts n in force: the notice in force before it is
// cleared by n's poster at n's time. The transaction holds the write lock,
// so no other can put one between the two statements.
func (t *Tx) PutSystemNotice(ctx context.Context, n rooms.SystemNotice) error {
	author, err := json.Marshal(n.PostedBy)
	if err != nil {
		return fmt.Errorf("encode poster of system notice %s: %w", n.ID, err)
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE system_notices SET cleared_at = ?, cleared_by = ? WHERE cleared_at IS NULL`,
		micros(n.PostedAt), n.PostedBy.ID); err != nil {
		return fmt.Errorf("put system notice %s: clear the one in force: %w", n.ID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO system_notices (id, level, message, posted_by, posted_at) VALUES (?, ?, ?, ?, ?)`,
		n.ID, n.Level, n.Message, string(author), micros(n.PostedAt))
	return mapWrite(err, "put system notice %s", n.ID)
}

// ClearSystemNotice ends the notice in force; rooms.ErrNotFound when none
// is.
func (t *Tx) ClearSystemNotice(ctx context.Context, by string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE system_notices SET cleared_at = ?, cleared_by = ? WHERE cleared_at IS NULL`,
		micros(at), by)
	return oneRow(res, mapWrite(err, "clear system notice"), "clear system notice")
}

// PutOPEL sets an organisation's level.
func (t *Tx) PutOPEL(ctx context.Context, o rooms.OPEL) error {
	author, err := json.Marshal(o.SetBy)
	if err != nil {
		return fmt.Errorf("encode setter of OPEL level of %s: %w", o.Organisation, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO opel_levels (organisation, level, note, set_at, set_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (organisation) DO UPDATE SET level = excluded.level, note = excluded.note,
			set_at = excluded.set_at, set_by = excluded.set_by`,
		o.Organisation, o.Level, o.Note, micros(o.SetAt), string(author))
	if isForeignKey(err) {
		return fmt.Errorf("put OPEL level of %s: %w", o.Organisation, rooms.ErrNotFound)
	}
	return mapWrite(err, "put OPEL level of %s", o.Organisation)
}

// CreateDisplay stores a new display; rooms.ErrDuplicate when the id or the
// token hash is taken.
func (t *Tx) CreateDisplay(ctx context.Context, d rooms.Display) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO displays (`+displayColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Organisation, d.Name, d.TokenHash, d.CreatedBy, micros(d.CreatedAt), nullMicros(d.RevokedAt))
	if isForeignKey(err) {
		return fmt.Errorf("create display %s: %w", d.ID, rooms.ErrNotFound)
	}
	return mapWrite(err, "create display %s", d.ID)
}

// RevokeDisplay marks a display revoked at at; rooms.ErrNotFound when there
// is no such display or it is revoked already.
func (t *Tx) RevokeDisplay(ctx context.Context, id string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE displays SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, micros(at), id)
	return oneRow(res, mapWrite(err, "revoke display %s", id), "revoke display %s", id)
}
