package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"patientpass/rooms"
)

// querier is what reads and writes need from either the read pool or a
// transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader implements rooms.Reader over a pool or a transaction.
type reader struct {
	q querier
}

// defaultReferralLimit is the cap rooms.ReferralFilter documents for Limit 0.
const defaultReferralLimit = 500

// Organisation returns the organisation with ODS code ods.
func (r reader) Organisation(ctx context.Context, ods string) (rooms.Organisation, error) {
	o := rooms.Organisation{ODS: ods}
	err := r.q.QueryRowContext(ctx, "SELECT name FROM organisations WHERE ods = ?", ods).Scan(&o.Name)
	if err != nil {
		return rooms.Organisation{}, notFound(err, "get organisation %s", ods)
	}
	return o, nil
}

// Organisations lists every organisation by ODS code.
func (r reader) Organisations(ctx context.Context) ([]rooms.Organisation, error) {
	rows, err := r.q.QueryContext(ctx, "SELECT ods, name FROM organisations ORDER BY ods")
	if err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	defer rows.Close()
	var out []rooms.Organisation
	for rows.Next() {
		var o rooms.Organisation
		if err := rows.Scan(&o.ODS, &o.Name); err != nil {
			return nil, fmt.Errorf("list organisations: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	return out, nil
}

const userColumns = `id, email, name, professional_body, registration_number, organisation,
	roles, status, password_hash, totp_secret, totp_pending_secret, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (rooms.User, error) {
	var (
		u                rooms.User
		roles            string
		created, updated int64
		body, status     string
	)
	err := row.Scan(&u.ID, &u.Email, &u.Name, &body, &u.RegistrationNumber, &u.Organisation,
		&roles, &status, &u.PasswordHash, &u.TOTPSecret, &u.TOTPPendingSecret, &created, &updated)
	if err != nil {
		return rooms.User{}, err
	}
	if err := json.Unmarshal([]byte(roles), &u.Roles); err != nil {
		return rooms.User{}, fmt.Errorf("decode roles of user %s: %w", u.ID, err)
	}
	u.ProfessionalBody = rooms.ProfessionalBody(body)
	u.Status = rooms.UserStatus(status)
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return u, nil
}

// User returns the user with id id.
func (r reader) User(ctx context.Context, id string) (rooms.User, error) {
	u, err := scanUser(r.q.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return rooms.User{}, notFound(err, "get user %s", id)
	}
	return u, nil
}

// UserByEmail looks a user up by email, normalised as it was when stored.
func (r reader) UserByEmail(ctx context.Context, email string) (rooms.User, error) {
	u, err := scanUser(r.q.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE email_key = ?", rooms.NormaliseEmail(email)))
	if err != nil {
		// The email is personal data: the error names no address.
		return rooms.User{}, notFound(err, "get user by email")
	}
	return u, nil
}

// Users lists the users f selects, oldest first.
func (r reader) Users(ctx context.Context, f rooms.UserFilter) ([]rooms.User, error) {
	var (
		where []string
		args  []any
	)
	if f.Organisation != "" {
		where = append(where, "organisation = ?")
		args = append(args, f.Organisation)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	q := "SELECT " + userColumns + " FROM users" + whereClause(where) + " ORDER BY created_at, rowid"
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []rooms.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// Pathway returns the pathway with id id.
func (r reader) Pathway(ctx context.Context, id string) (rooms.Pathway, error) {
	var def string
	if err := r.q.QueryRowContext(ctx, "SELECT definition FROM pathways WHERE id = ?", id).Scan(&def); err != nil {
		return rooms.Pathway{}, notFound(err, "get pathway %s", id)
	}
	var p rooms.Pathway
	if err := json.Unmarshal([]byte(def), &p); err != nil {
		return rooms.Pathway{}, fmt.Errorf("decode pathway %s: %w", id, err)
	}
	return p, nil
}

// Pathways lists every pathway by id.
func (r reader) Pathways(ctx context.Context) ([]rooms.Pathway, error) {
	rows, err := r.q.QueryContext(ctx, "SELECT id, definition FROM pathways ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list pathways: %w", err)
	}
	defer rows.Close()
	var out []rooms.Pathway
	for rows.Next() {
		var id, def string
		if err := rows.Scan(&id, &def); err != nil {
			return nil, fmt.Errorf("list pathways: %w", err)
		}
		var p rooms.Pathway
		if err := json.Unmarshal([]byte(def), &p); err != nil {
			return nil, fmt.Errorf("decode pathway %s: %w", id, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pathways: %w", err)
	}
	return out, nil
}

const referralColumns = `id, pathway_id, status, priority,
	patient_nhs_number, patient_name, patient_date_of_birth, patient_sex,
	form, contact_phone, consultant_discussed, referrer,
	referring_organisation, receiving_organisation, assignee_id, outcomes,
	submitted_at, triage_due_at, status_changed_at, triaged_at, reminder_at,
	created_at, updated_at, head_seq`

func scanReferral(row interface{ Scan(...any) error }) (rooms.Referral, error) {
	var (
		r                  rooms.Referral
		status, priority   string
		form, referrer     string
		assignee, outcomes sql.NullString
		submitted, due     sql.NullInt64
		triaged, reminder  sql.NullInt64
		statusChanged      int64
		created, updated   int64
	)
	err := row.Scan(&r.ID, &r.PathwayID, &status, &priority,
		&r.Patient.NHSNumber, &r.Patient.Name, &r.Patient.DateOfBirth, &r.Patient.Sex,
		&form, &r.ContactPhone, &r.ConsultantDiscussed, &referrer,
		&r.ReferringOrganisation, &r.ReceivingOrganisation, &assignee, &outcomes,
		&submitted, &due, &statusChanged, &triaged, &reminder,
		&created, &updated, &r.HeadSeq)
	if err != nil {
		return rooms.Referral{}, err
	}
	r.Status, r.Priority = rooms.Status(status), rooms.Priority(priority)
	if err := json.Unmarshal([]byte(form), &r.Form); err != nil {
		return rooms.Referral{}, fmt.Errorf("decode form of referral %s: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(referrer), &r.Referrer); err != nil {
		return rooms.Referral{}, fmt.Errorf("decode referrer of referral %s: %w", r.ID, err)
	}
	if outcomes.Valid {
		if err := json.Unmarshal([]byte(outcomes.String), &r.Outcomes); err != nil {
			return rooms.Referral{}, fmt.Errorf("decode outcomes of referral %s: %w", r.ID, err)
		}
		if len(r.Outcomes) == 0 {
			r.Outcomes = nil
		}
	}
	r.AssigneeID = assignee.String
	r.SubmittedAt, r.TriageDueAt = fromNullMicros(submitted), fromNullMicros(due)
	r.TriagedAt, r.ReminderAt = fromNullMicros(triaged), fromNullMicros(reminder)
	r.StatusChangedAt = fromMicros(statusChanged)
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return r, nil
}

// Referral returns a referral with its stored plan sections and participants.
func (r reader) Referral(ctx context.Context, id string) (rooms.Referral, error) {
	ref, err := scanReferral(r.q.QueryRowContext(ctx, "SELECT "+referralColumns+" FROM referrals WHERE id = ?", id))
	if err != nil {
		return rooms.Referral{}, notFound(err, "get referral %s", id)
	}
	refs := []rooms.Referral{ref}
	if err := r.fillDetails(ctx, refs); err != nil {
		return rooms.Referral{}, err
	}
	return refs[0], nil
}

// Referrals lists the referrals f selects in board order: earliest triage
// deadline first, none last, then newest first.
func (r reader) Referrals(ctx context.Context, f rooms.ReferralFilter) ([]rooms.Referral, error) {
	var (
		where []string
		args  []any
	)
	switch {
	case f.VisibleToUser != "" && f.VisibleToOrganisation != "":
		where = append(where, "(id IN (SELECT referral_id FROM participants WHERE user_id = ?) OR receiving_organisation = ?)")
		args = append(args, f.VisibleToUser, f.VisibleToOrganisation)
	case f.VisibleToUser != "":
		where = append(where, "id IN (SELECT referral_id FROM participants WHERE user_id = ?)")
		args = append(args, f.VisibleToUser)
	case f.VisibleToOrganisation != "":
		where = append(where, "receiving_organisation = ?")
		args = append(args, f.VisibleToOrganisation)
	}
	if len(f.Status) > 0 {
		where = append(where, "status IN ("+placeholders(len(f.Status))+")")
		for _, s := range f.Status {
			args = append(args, string(s))
		}
	}
	if f.PathwayID != "" {
		where = append(where, "pathway_id = ?")
		args = append(args, f.PathwayID)
	}
	if f.Priority != "" {
		where = append(where, "priority = ?")
		args = append(args, string(f.Priority))
	}
	if f.ReceivingOrganisation != "" {
		where = append(where, "receiving_organisation = ?")
		args = append(args, f.ReceivingOrganisation)
	}
	if !f.UpdatedSince.IsZero() {
		where = append(where, "updated_at >= ?")
		args = append(args, micros(f.UpdatedSince))
	}
	if c := f.ChangedAfter; c != nil {
		where = append(where, "(updated_at, id) > (?, ?)")
		args = append(args, micros(c.UpdatedAt), c.ID)
	}
	if !f.ChangedBefore.IsZero() {
		where = append(where, "updated_at < ?")
		args = append(args, micros(f.ChangedBefore))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultReferralLimit
	}
	args = append(args, limit)
	order := "triage_due_at IS NULL, triage_due_at, created_at DESC, id"
	if f.ByChange {
		order = "updated_at, id"
	}
	q := "SELECT " + referralColumns + " FROM referrals" + whereClause(where) + " ORDER BY " + order + " LIMIT ?"
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list referrals: %w", err)
	}
	defer rows.Close()
	var out []rooms.Referral
	for rows.Next() {
		ref, err := scanReferral(rows)
		if err != nil {
			return nil, fmt.Errorf("list referrals: %w", err)
		}
		out = append(out, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list referrals: %w", err)
	}
	rows.Close()
	if err := r.fillDetails(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// fillDetails loads the plan sections and participants of refs in two
// queries, whatever the number of referrals.
func (r reader) fillDetails(ctx context.Context, refs []rooms.Referral) error {
	if len(refs) == 0 {
		return nil
	}
	index := make(map[string]*rooms.Referral, len(refs))
	ids := make([]string, 0, len(refs))
	for i := range refs {
		index[refs[i].ID] = &refs[i]
		ids = append(ids, refs[i].ID)
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("encode referral ids: %w", err)
	}

	rows, err := r.q.QueryContext(ctx, `SELECT referral_id, name, revision, text, updated_by, updated_at
		FROM plan_sections WHERE referral_id IN (SELECT value FROM json_each(?))
		ORDER BY referral_id, name`, string(idList))
	if err != nil {
		return fmt.Errorf("read plan sections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id      string
			s       rooms.PlanSection
			updated int64
		)
		if err := rows.Scan(&id, &s.Name, &s.Revision, &s.Text, &s.UpdatedBy, &updated); err != nil {
			return fmt.Errorf("read plan sections: %w", err)
		}
		s.UpdatedAt = fromMicros(updated)
		ref := index[id]
		ref.Plan.Sections = append(ref.Plan.Sections, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read plan sections: %w", err)
	}
	rows.Close()

	rows, err = r.q.QueryContext(ctx, `SELECT referral_id, user_id, name, added_by, added_at
		FROM participants WHERE referral_id IN (SELECT value FROM json_each(?))
		ORDER BY referral_id, added_at, rowid`, string(idList))
	if err != nil {
		return fmt.Errorf("read participants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id    string
			p     rooms.Participant
			added int64
		)
		if err := rows.Scan(&id, &p.UserID, &p.Name, &p.AddedBy, &added); err != nil {
			return fmt.Errorf("read participants: %w", err)
		}
		p.AddedAt = fromMicros(added)
		ref := index[id]
		ref.Participants = append(ref.Participants, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read participants: %w", err)
	}
	return nil
}

func scanEvent(row interface{ Scan(...any) error }) (rooms.Event, error) {
	var (
		e            rooms.Event
		kind, author string
		body         string
		when         int64
	)
	if err := row.Scan(&e.ReferralID, &e.Seq, &kind, &author, &when, &body); err != nil {
		return rooms.Event{}, err
	}
	if err := json.Unmarshal([]byte(author), &e.Author); err != nil {
		return rooms.Event{}, fmt.Errorf("decode author of event %s/%d: %w", e.ReferralID, e.Seq, err)
	}
	e.Kind = rooms.EventKind(kind)
	e.At = fromMicros(when)
	e.Body = json.RawMessage(body)
	return e, nil
}

// Events returns up to limit events of a referral after seq after, in seq
// order; limit <= 0 means no limit.
func (r reader) Events(ctx context.Context, referralID string, after int64, limit int) ([]rooms.Event, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := r.q.QueryContext(ctx, `SELECT referral_id, seq, kind, author, at, body FROM events
		WHERE referral_id = ? AND seq > ? ORDER BY seq LIMIT ?`, referralID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read events of referral %s: %w", referralID, err)
	}
	defer rows.Close()
	var out []rooms.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read events of referral %s: %w", referralID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events of referral %s: %w", referralID, err)
	}
	return out, nil
}

// Event returns one event of a referral.
func (r reader) Event(ctx context.Context, referralID string, seq int64) (rooms.Event, error) {
	e, err := scanEvent(r.q.QueryRowContext(ctx, `SELECT referral_id, seq, kind, author, at, body FROM events
		WHERE referral_id = ? AND seq = ?`, referralID, seq))
	if err != nil {
		return rooms.Event{}, notFound(err, "get event %d of referral %s", seq, referralID)
	}
	return e, nil
}

// ReadMarker returns the last seq the user has read in the referral, 0 when
// none is stored.
func (r reader) ReadMarker(ctx context.Context, referralID, userID string) (int64, error) {
	var seq int64
	err := r.q.QueryRowContext(ctx, "SELECT seq FROM read_markers WHERE referral_id = ? AND user_id = ?",
		referralID, userID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get read marker of user %s in referral %s: %w", userID, referralID, err)
	}
	return seq, nil
}

// Command returns the record of a command by its actor and ref.
func (r reader) Command(ctx context.Context, actorID, ref string) (rooms.CommandRecord, error) {
	c := rooms.CommandRecord{ActorID: actorID, Ref: ref}
	var (
		result sql.NullString
		when   int64
	)
	err := r.q.QueryRowContext(ctx, "SELECT kind, referral_id, result, at FROM commands WHERE actor_id = ? AND ref = ?",
		actorID, ref).Scan(&c.Kind, &c.ReferralID, &result, &when)
	if err != nil {
		return rooms.CommandRecord{}, notFound(err, "get command %s of user %s", ref, actorID)
	}
	if result.Valid {
		c.Result = json.RawMessage(result.String)
	}
	c.At = fromMicros(when)
	return c, nil
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
