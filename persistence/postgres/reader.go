package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"patientpass/rooms"
)

// querier is what the pool and a transaction have in common, so the reads
// are written once for Store and tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// reader implements rooms.Reader on a pool or inside a transaction.
type reader struct {
	q querier
}

// Organisation returns the organisation with ODS code ods.
func (r reader) Organisation(ctx context.Context, ods string) (rooms.Organisation, error) {
	var o rooms.Organisation
	err := r.q.QueryRow(ctx, `SELECT ods, name FROM organisations WHERE ods = $1`, ods).Scan(&o.ODS, &o.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("get organisation %s: %w", ods, rooms.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("get organisation %s: %w", ods, err)
	}
	return o, nil
}

// Organisations lists every organisation by ODS code.
func (r reader) Organisations(ctx context.Context) ([]rooms.Organisation, error) {
	rows, err := r.q.Query(ctx, `SELECT ods, name FROM organisations ORDER BY ods`)
	if err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	os, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Organisation, error) {
		var o rooms.Organisation
		err := row.Scan(&o.ODS, &o.Name)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	return os, nil
}

const userColumns = `id, email, name, professional_body, registration_number, organisation,
	roles, status, password_hash, totp_secret, totp_pending_secret, created_at, updated_at`

func scanUser(row pgx.Row) (rooms.User, error) {
	var (
		u     rooms.User
		roles []string
	)
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.ProfessionalBody, &u.RegistrationNumber, &u.Organisation,
		&roles, &u.Status, &u.PasswordHash, &u.TOTPSecret, &u.TOTPPendingSecret, &u.CreatedAt, &u.UpdatedAt)
	if err != nil {
		return u, err
	}
	if len(roles) > 0 {
		u.Roles = make([]rooms.Role, len(roles))
		for i, role := range roles {
			u.Roles[i] = rooms.Role(role)
		}
	}
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	return u, nil
}

// User returns the user with id.
func (r reader) User(ctx context.Context, id string) (rooms.User, error) {
	u, err := scanUser(r.q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("get user %s: %w", id, rooms.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the user whose email, normalised, is email's.
func (r reader) UserByEmail(ctx context.Context, email string) (rooms.User, error) {
	u, err := scanUser(r.q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email_key = $1`, rooms.NormaliseEmail(email)))
	if errors.Is(err, pgx.ErrNoRows) {
		// The address is not logged: it identifies a person.
		return u, fmt.Errorf("get user by email: %w", rooms.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("get user by email: %w", err)
	}
	return u, nil
}

// Users lists users, oldest first, of one organisation and status when
// those are set.
func (r reader) Users(ctx context.Context, f rooms.UserFilter) ([]rooms.User, error) {
	var w where
	if f.Organisation != "" {
		w.add("organisation = ?", f.Organisation)
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	rows, err := r.q.Query(ctx, `SELECT `+userColumns+` FROM users`+w.sql()+` ORDER BY created_at, id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// Pathway returns the pathway with id.
func (r reader) Pathway(ctx context.Context, id string) (rooms.Pathway, error) {
	var p rooms.Pathway
	err := r.q.QueryRow(ctx, `SELECT definition FROM pathways WHERE id = $1`, id).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("get pathway %s: %w", id, rooms.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("get pathway %s: %w", id, err)
	}
	return p, nil
}

// Pathways lists every pathway by id.
func (r reader) Pathways(ctx context.Context) ([]rooms.Pathway, error) {
	rows, err := r.q.Query(ctx, `SELECT definition FROM pathways ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list pathways: %w", err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowTo[rooms.Pathway])
	if err != nil {
		return nil, fmt.Errorf("list pathways: %w", err)
	}
	return ps, nil
}

const referralColumns = `r.id, r.pathway_id, r.status, r.priority,
	r.patient_nhs_number, r.patient_name, r.patient_date_of_birth, r.patient_sex,
	r.form, r.contact_phone, r.consultant_discussed, r.referrer,
	r.referring_organisation, r.receiving_organisation, r.assignee_id, r.outcomes,
	r.submitted_at, r.triage_due_at, r.status_changed_at, r.triaged_at, r.reminder_at,
	r.created_at, r.updated_at, r.head_seq`

func scanReferral(row pgx.Row) (rooms.Referral, error) {
	var (
		x              rooms.Referral
		form, outcomes []byte
	)
	err := row.Scan(&x.ID, &x.PathwayID, &x.Status, &x.Priority,
		&x.Patient.NHSNumber, &x.Patient.Name, &x.Patient.DateOfBirth, &x.Patient.Sex,
		&form, &x.ContactPhone, &x.ConsultantDiscussed, &x.Referrer,
		&x.ReferringOrganisation, &x.ReceivingOrganisation, &x.AssigneeID, &outcomes,
		&x.SubmittedAt, &x.TriageDueAt, &x.StatusChangedAt, &x.TriagedAt, &x.ReminderAt,
		&x.CreatedAt, &x.UpdatedAt, &x.HeadSeq)
	if err != nil {
		return x, err
	}
	if x.Form, err = unmarshalJSON(form); err != nil {
		return x, fmt.Errorf("decode form: %w", err)
	}
	if x.Outcomes, err = unmarshalOutcomes(outcomes); err != nil {
		return x, fmt.Errorf("decode outcomes: %w", err)
	}
	x.SubmittedAt, x.TriageDueAt = utcPtr(x.SubmittedAt), utcPtr(x.TriageDueAt)
	x.TriagedAt, x.ReminderAt = utcPtr(x.TriagedAt), utcPtr(x.ReminderAt)
	x.StatusChangedAt, x.CreatedAt, x.UpdatedAt = utc(x.StatusChangedAt), utc(x.CreatedAt), utc(x.UpdatedAt)
	return x, nil
}

// The participants and plan of one or more referrals, read in the same round
// trip as the referrals (or right after them for a list).
const (
	participantsQuery = `SELECT referral_id, user_id, name, added_by, added_at
		FROM referral_participants WHERE referral_id = ANY($1) ORDER BY referral_id, added_at, pos`
	planQuery = `SELECT referral_id, name, revision, text, updated_by, updated_at
		FROM plan_sections WHERE referral_id = ANY($1) ORDER BY referral_id, name`
)

// Referral returns the referral with id, with its plan and participants.
func (r reader) Referral(ctx context.Context, id string) (rooms.Referral, error) {
	return r.referral(ctx, id, `SELECT `+referralColumns+` FROM referrals r WHERE r.id = $1`)
}

// referral reads one referral with query (which selects referralColumns by
// id) and its plan and participants in one round trip.
func (r reader) referral(ctx context.Context, id, query string) (rooms.Referral, error) {
	ids := []string{id}
	b := &pgx.Batch{}
	b.Queue(query, id)
	b.Queue(participantsQuery, ids)
	b.Queue(planQuery, ids)
	br := r.q.SendBatch(ctx, b)
	x, err := scanReferral(br.QueryRow())
	if err == nil {
		err = r.readDetails(br, map[string]*rooms.Referral{id: &x})
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.Referral{}, fmt.Errorf("get referral %s: %w", id, rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.Referral{}, fmt.Errorf("get referral %s: %w", id, err)
	}
	return x, nil
}

// readDetails reads the results of participantsQuery and planQuery from br
// into the referrals byID.
func (r reader) readDetails(br pgx.BatchResults, byID map[string]*rooms.Referral) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("read participants: %w", err)
	}
	var (
		referralID string
		p          rooms.Participant
	)
	_, err = pgx.ForEachRow(rows, []any{&referralID, &p.UserID, &p.Name, &p.AddedBy, &p.AddedAt}, func() error {
		if x := byID[referralID]; x != nil {
			p.AddedAt = utc(p.AddedAt)
			x.Participants = append(x.Participants, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read participants: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	var (
		s         rooms.PlanSection
		updatedAt *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&referralID, &s.Name, &s.Revision, &s.Text, &s.UpdatedBy, &updatedAt}, func() error {
		if x := byID[referralID]; x != nil {
			s.UpdatedAt = time.Time{}
			if updatedAt != nil {
				s.UpdatedAt = utc(*updatedAt)
			}
			x.Plan.Sections = append(x.Plan.Sections, s)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	return nil
}

// Referrals lists the referrals matching f, earliest triage deadline first,
// with their plans and participants, in two round trips.
func (r reader) Referrals(ctx context.Context, f rooms.ReferralFilter) ([]rooms.Referral, error) {
	var w where
	var visible []string
	if f.VisibleToUser != "" {
		visible = append(visible, w.arg(`EXISTS (SELECT 1 FROM referral_participants p
			WHERE p.referral_id = r.id AND p.user_id = ?)`, f.VisibleToUser))
	}
	if f.VisibleToOrganisation != "" {
		visible = append(visible, w.arg("r.receiving_organisation = ?", f.VisibleToOrganisation))
	}
	if len(visible) > 0 {
		w.conds = append(w.conds, "("+strings.Join(visible, " OR ")+")")
	}
	if len(f.Status) > 0 {
		statuses := make([]string, len(f.Status))
		for i, s := range f.Status {
			statuses[i] = string(s)
		}
		w.add("r.status = ANY(?)", statuses)
	}
	if f.PathwayID != "" {
		w.add("r.pathway_id = ?", f.PathwayID)
	}
	if f.Priority != "" {
		w.add("r.priority = ?", string(f.Priority))
	}
	if f.ReceivingOrganisation != "" {
		w.add("r.receiving_organisation = ?", f.ReceivingOrganisation)
	}
	if !f.UpdatedSince.IsZero() {
		w.add("r.updated_at >= ?", micro(f.UpdatedSince))
	}
	if c := f.ChangedAfter; c != nil {
		w.conds = append(w.conds, w.arg(w.arg("(r.updated_at, r.id) > (?, ?)", micro(c.UpdatedAt)), c.ID))
	}
	if !f.ChangedBefore.IsZero() {
		w.add("r.updated_at < ?", micro(f.ChangedBefore))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	// id last makes the order total, so pages and tests are deterministic.
	order := `r.triage_due_at ASC NULLS LAST, r.created_at DESC, r.id`
	if f.ByChange {
		order = `r.updated_at, r.id`
	}
	query := `SELECT ` + referralColumns + ` FROM referrals r` + w.sql() + fmt.Sprintf(` ORDER BY %s LIMIT %d`, order, limit)
	rows, err := r.q.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list referrals: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Referral, error) { return scanReferral(row) })
	if err != nil {
		return nil, fmt.Errorf("list referrals: %w", err)
	}
	if len(list) == 0 {
		return list, nil
	}
	ids := make([]string, len(list))
	byID := make(map[string]*rooms.Referral, len(list))
	for i := range list {
		ids[i] = list[i].ID
		byID[list[i].ID] = &list[i]
	}
	b := &pgx.Batch{}
	b.Queue(participantsQuery, ids)
	b.Queue(planQuery, ids)
	br := r.q.SendBatch(ctx, b)
	err = r.readDetails(br, byID)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("list referrals: %w", err)
	}
	return list, nil
}

const eventColumns = `referral_id, seq, kind, author, at, body`

func scanEvent(row pgx.CollectableRow) (rooms.Event, error) {
	var (
		e    rooms.Event
		body []byte
	)
	err := row.Scan(&e.ReferralID, &e.Seq, &e.Kind, &e.Author, &e.At, &body)
	e.At = utc(e.At)
	if body != nil {
		e.Body = body
	}
	return e, err
}

// Events returns up to limit events of a referral after seq after, in seq
// order; limit <= 0 means no limit.
func (r reader) Events(ctx context.Context, referralID string, after int64, limit int) ([]rooms.Event, error) {
	rows, err := r.q.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE referral_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, referralID, after, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read events of referral %s: %w", referralID, err)
	}
	es, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read events of referral %s: %w", referralID, err)
	}
	return es, nil
}

// Event returns one event of a referral.
func (r reader) Event(ctx context.Context, referralID string, seq int64) (rooms.Event, error) {
	rows, err := r.q.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE referral_id = $1 AND seq = $2`, referralID, seq)
	if err != nil {
		return rooms.Event{}, fmt.Errorf("get event %d of referral %s: %w", seq, referralID, err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("get event %d of referral %s: %w", seq, referralID, rooms.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("get event %d of referral %s: %w", seq, referralID, err)
	}
	return e, nil
}

// ReadMarker returns the last seq the user has read in the referral, 0 when
// none is stored.
func (r reader) ReadMarker(ctx context.Context, referralID, userID string) (int64, error) {
	var seq int64
	err := r.q.QueryRow(ctx, `SELECT seq FROM read_markers WHERE referral_id = $1 AND user_id = $2`,
		referralID, userID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get read marker of user %s in referral %s: %w", userID, referralID, err)
	}
	return seq, nil
}

const commandColumns = `actor_id, ref, kind, referral_id, result, at`

func scanCommand(row pgx.Row) (rooms.CommandRecord, error) {
	var (
		c      rooms.CommandRecord
		result []byte
	)
	err := row.Scan(&c.ActorID, &c.Ref, &c.Kind, &c.ReferralID, &result, &c.At)
	if result != nil {
		c.Result = result
	}
	c.At = utc(c.At)
	return c, err
}

// Command returns the record of the command ref of actor actorID.
func (r reader) Command(ctx context.Context, actorID, ref string) (rooms.CommandRecord, error) {
	c, err := scanCommand(r.q.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE actor_id = $1 AND ref = $2`, actorID, ref))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("get command %s of user %s: %w", ref, actorID, rooms.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("get command %s of user %s: %w", ref, actorID, err)
	}
	return c, nil
}

const auditColumns = `id, chain, seq, at, actor_id, actor_registration, actor_role, action, event,
	referral_id, patient_nhs_number, outcome, detail, node, client_addr, prev_hash, hash`

func scanAuditEntry(row pgx.CollectableRow) (rooms.AuditEntry, error) {
	var e rooms.AuditEntry
	err := row.Scan(&e.ID, &e.Chain, &e.Seq, &e.At, &e.ActorID, &e.ActorRegistration, &e.ActorRole, &e.Action, &e.Event,
		&e.ReferralID, &e.PatientNHSNumber, &e.Outcome, &e.Detail, &e.Node, &e.ClientAddr, &e.PrevHash, &e.Hash)
	e.At = utc(e.At)
	return e, err
}

// where builds a WHERE clause from conditions written with ? for their one
// argument, numbering the placeholders as it goes.
type where struct {
	conds []string
	args  []any
}

// arg numbers cond's ? with the next placeholder and returns it.
func (w *where) arg(cond string, v any) string {
	w.args = append(w.args, v)
	return strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
}

func (w *where) add(cond string, v any) { w.conds = append(w.conds, w.arg(cond, v)) }

// addSame adds cond with every ? in it numbered as the one placeholder of
// v.
func (w *where) addSame(cond string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(w.args))))
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
