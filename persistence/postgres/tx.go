package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"patientpass/rooms"
)

// tx is one READ COMMITTED transaction of a Store. It is used by one
// goroutine, the one running InTx's fn.
//
// UpdateReferral, AppendEvent, RecordCommand and AddNotifications are sent
// with the transaction's next statement or its commit, AppendAudit with its
// commit (see txConn), so their failures are reported there, and fail the
// transaction. Everything else is sent when it is called.
type tx struct {
	reader // on q's txConn: its statements only read
	q      writer
	// locked are the referrals this transaction holds locked: rows that
	// cannot vanish before it ends, so an update of one needs no check that
	// it found it.
	locked map[string]bool
	// prefetched are referrals a group locked and read up front, each
	// handed to the first LockReferral of it (a later one reads it again,
	// with what the transaction has written since).
	prefetched map[string]rooms.Referral
}

func newTx(c *txConn) *tx { return &tx{reader: reader{q: c}, q: writer{c}} }

// writer is the transaction's connection as tx's own methods use it. Every
// statement they send at once, rather than queue, is taken to write (one
// that only locks, such as LockUser's, is counted too), so that a group
// knows when a failed member cannot be undone without rolling back (see
// txConn.undo). The reader's statements go to the txConn itself.
type writer struct{ *txConn }

func (w writer) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	w.direct++
	return w.txConn.Exec(ctx, sql, args...)
}

func (w writer) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	w.direct++
	return w.txConn.QueryRow(ctx, sql, args...)
}

func (w writer) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	w.direct++
	return w.txConn.Query(ctx, sql, args...)
}

func (w writer) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	w.direct++
	return w.txConn.SendBatch(ctx, b)
}

var _ rooms.Tx = (*tx)(nil)

// PutOrganisation creates or renames an organisation.
func (t *tx) PutOrganisation(ctx context.Context, o rooms.Organisation) error {
	_, err := t.q.Exec(ctx, `INSERT INTO organisations (ods, name) VALUES ($1, $2)
		ON CONFLICT (ods) DO UPDATE SET name = excluded.name`, o.ODS, o.Name)
	if err != nil {
		return mapErr(err, "put organisation "+o.ODS)
	}
	return nil
}

func roleStrings(roles []rooms.Role) []string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return s
}

// CreateUser stores a new user; rooms.ErrDuplicate when the id or the
// normalised email is taken. The email is kept as given.
func (t *tx) CreateUser(ctx context.Context, u rooms.User) error {
	_, err := t.q.Exec(ctx, `INSERT INTO users (`+userColumns+`, email_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		u.ID, u.Email, u.Name, string(u.ProfessionalBody), u.RegistrationNumber, u.Organisation,
		roleStrings(u.Roles), string(u.Status), u.PasswordHash, u.TOTPSecret, u.TOTPPendingSecret,
		micro(u.CreatedAt), micro(u.UpdatedAt), rooms.NormaliseEmail(u.Email))
	if err != nil {
		return mapErr(err, "create user "+u.ID)
	}
	return nil
}

// UpdateUser replaces every stored field of the user u.ID. The last TOTP
// step used is not a field of rooms.User and is kept.
func (t *tx) UpdateUser(ctx context.Context, u rooms.User) error {
	tag, err := t.q.Exec(ctx, `UPDATE users SET email = $2, name = $3, professional_body = $4,
		registration_number = $5, organisation = $6, roles = $7, status = $8, password_hash = $9,
		totp_secret = $10, totp_pending_secret = $11, created_at = $12, updated_at = $13, email_key = $14
		WHERE id = $1`,
		u.ID, u.Email, u.Name, string(u.ProfessionalBody), u.RegistrationNumber, u.Organisation,
		roleStrings(u.Roles), string(u.Status), u.PasswordHash, u.TOTPSecret, u.TOTPPendingSecret,
		micro(u.CreatedAt), micro(u.UpdatedAt), rooms.NormaliseEmail(u.Email))
	if err != nil {
		return mapErr(err, "update user "+u.ID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update user %s: %w", u.ID, rooms.ErrNotFound)
	}
	return nil
}

// PutPathway creates or replaces a pathway.
func (t *tx) PutPathway(ctx context.Context, p rooms.Pathway) error {
	def, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("put pathway %s: %w", p.ID, err)
	}
	_, err = t.q.Exec(ctx, `INSERT INTO pathways (id, receiving_organisation, definition) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET receiving_organisation = excluded.receiving_organisation,
			definition = excluded.definition`, p.ID, p.ReceivingOrganisation, def)
	if err != nil {
		return mapErr(err, "put pathway "+p.ID)
	}
	return nil
}

// CreateReferral stores a new referral and its participants in one round
// trip; rooms.ErrDuplicate when the id is taken.
func (t *tx) CreateReferral(ctx context.Context, r rooms.Referral) error {
	form, err := marshalJSON(r.Form)
	if err != nil {
		return fmt.Errorf("create referral %s: encode form: %w", r.ID, err)
	}
	outcomes, err := marshalOutcomes(r.Outcomes)
	if err != nil {
		return fmt.Errorf("create referral %s: encode outcomes: %w", r.ID, err)
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO referrals (id, pathway_id, status, priority,
		patient_nhs_number, patient_name, patient_date_of_birth, patient_sex,
		form, contact_phone, consultant_discussed, referrer,
		referring_organisation, receiving_organisation, assignee_id, outcomes,
		submitted_at, triage_due_at, status_changed_at, triaged_at, reminder_at,
		created_at, updated_at, head_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
			$22, $23, $24)`,
		r.ID, r.PathwayID, string(r.Status), string(r.Priority),
		r.Patient.NHSNumber, r.Patient.Name, r.Patient.DateOfBirth, r.Patient.Sex,
		form, r.ContactPhone, r.ConsultantDiscussed, r.Referrer,
		r.ReferringOrganisation, r.ReceivingOrganisation, r.AssigneeID, outcomes,
		microPtr(r.SubmittedAt), microPtr(r.TriageDueAt), micro(r.StatusChangedAt), microPtr(r.TriagedAt), microPtr(r.ReminderAt),
		micro(r.CreatedAt), micro(r.UpdatedAt), r.HeadSeq)
	for _, p := range r.Participants {
		queueParticipant(b, r.ID, p)
	}
	if err := t.q.SendBatch(ctx, b).Close(); err != nil {
		return mapErr(err, "create referral "+r.ID)
	}
	return nil
}

func queueParticipant(b *pgx.Batch, referralID string, p rooms.Participant) {
	b.Queue(`INSERT INTO referral_participants (referral_id, user_id, name, added_by, added_at)
		VALUES ($1, $2, $3, $4, $5)`, referralID, p.UserID, p.Name, p.AddedBy, micro(p.AddedAt))
}

// LockReferral reads a referral with its plan and participants and holds
// its row lock until the transaction ends: the lock serialises the commands
// on one referral, which is what keeps its event seqs gapless.
func (t *tx) LockReferral(ctx context.Context, id string) (rooms.Referral, error) {
	if r, ok := t.prefetched[id]; ok {
		delete(t.prefetched, id)
		return r, nil
	}
	r, err := t.referral(ctx, id, `SELECT `+referralColumns+` FROM referrals r WHERE r.id = $1 FOR UPDATE`)
	if err == nil {
		if t.locked == nil {
			t.locked = map[string]bool{}
		}
		t.locked[id] = true
	}
	return r, err
}

// lockReferrals locks the referrals of ids that exist, in the order of
// their ids, and reads them with their plans and participants into
// t.prefetched, in one round trip. Ids that name no referral are left for
// LockReferral to find missing.
func (t *tx) lockReferrals(ctx context.Context, ids []string) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	b := &pgx.Batch{}
	b.Queue(`SELECT `+referralColumns+` FROM referrals r WHERE r.id = ANY($1) ORDER BY r.id FOR UPDATE`, ids)
	b.Queue(participantsQuery, ids)
	b.Queue(planQuery, ids)
	br := t.reader.q.SendBatch(ctx, b)
	rows, err := br.Query()
	var list []rooms.Referral
	if err == nil {
		list, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Referral, error) { return scanReferral(row) })
	}
	byID := make(map[string]*rooms.Referral, len(list))
	for i := range list {
		byID[list[i].ID] = &list[i]
	}
	if err == nil {
		err = t.readDetails(br, byID)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("lock %d referrals: %w", len(ids), err)
	}
	if t.locked == nil {
		t.locked = map[string]bool{}
	}
	t.prefetched = make(map[string]rooms.Referral, len(list))
	for _, r := range list {
		t.locked[r.ID] = true
		t.prefetched[r.ID] = r
	}
	return nil
}

// UpdateReferral stores the referral's mutable state. It is sent with the
// transaction's next statement.
func (t *tx) UpdateReferral(_ context.Context, r rooms.Referral) error {
	form, err := marshalJSON(r.Form)
	if err != nil {
		return fmt.Errorf("update referral %s: encode form: %w", r.ID, err)
	}
	outcomes, err := marshalOutcomes(r.Outcomes)
	if err != nil {
		return fmt.Errorf("update referral %s: encode outcomes: %w", r.ID, err)
	}
	args := []any{r.ID, string(r.Status), string(r.Priority), form,
		r.ContactPhone, r.ConsultantDiscussed, r.AssigneeID, outcomes,
		microPtr(r.SubmittedAt), microPtr(r.TriageDueAt), micro(r.StatusChangedAt), microPtr(r.TriagedAt),
		microPtr(r.ReminderAt), micro(r.UpdatedAt), r.HeadSeq}
	done := func(tag pgconn.CommandTag, err error) error {
		if err != nil {
			return mapErr(err, "update referral "+r.ID)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("update referral %s: %w", r.ID, rooms.ErrNotFound)
		}
		return nil
	}
	if t.locked[r.ID] {
		// The row is there until the transaction ends: nothing to check
		// of the rows changed, so the update can go with the others.
		t.q.queueRow(referralUpdates, args, done)
		return nil
	}
	t.q.queueWrite(referralUpdates.one, args, true, done)
	return nil
}

// referralUpdates are the updates of locked referrals. Several go as one
// UPDATE from arrays, one per column, keeping each referral's last (an
// UPDATE … FROM changes a row once, with whichever of its matches it meets
// first).
var referralUpdates = &rowKind{
	one: `UPDATE referrals SET status = $2, priority = $3, form = $4,
		contact_phone = $5, consultant_discussed = $6, assignee_id = $7, outcomes = $8,
		submitted_at = $9, triage_due_at = $10, status_changed_at = $11, triaged_at = $12,
		reminder_at = $13, updated_at = $14, head_seq = $15
		WHERE id = $1`,
	many: func(rows [][]any) (string, []any) {
		last := map[any]int{}
		for i, r := range rows {
			last[r[0]] = i
		}
		kept := make([][]any, 0, len(last))
		for i, r := range rows {
			if last[r[0]] == i {
				kept = append(kept, r)
			}
		}
		return `UPDATE referrals AS r SET status = u.status, priority = u.priority, form = u.form,
			contact_phone = u.contact_phone, consultant_discussed = u.consultant_discussed, assignee_id = u.assignee_id,
			outcomes = u.outcomes, submitted_at = u.submitted_at, triage_due_at = u.triage_due_at,
			status_changed_at = u.status_changed_at, triaged_at = u.triaged_at, reminder_at = u.reminder_at,
			updated_at = u.updated_at, head_seq = u.head_seq
			FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::boolean[], $7::text[], $8::jsonb[],
				$9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[],
				$14::timestamptz[], $15::bigint[])
				AS u(id, status, priority, form, contact_phone, consultant_discussed, assignee_id, outcomes,
					submitted_at, triage_due_at, status_changed_at, triaged_at, reminder_at, updated_at, head_seq)
			WHERE r.id = u.id`, []any{
				column[string](kept, 0), column[string](kept, 1), column[string](kept, 2), column[[]byte](kept, 3),
				column[string](kept, 4), column[bool](kept, 5), column[string](kept, 6), column[[]byte](kept, 7),
				column[*time.Time](kept, 8), column[*time.Time](kept, 9), column[time.Time](kept, 10), column[*time.Time](kept, 11),
				column[*time.Time](kept, 12), column[time.Time](kept, 13), column[int64](kept, 14),
			}
	},
}

// column is the values of rows' argument i, as one array.
func column[T any](rows [][]any, i int) []T {
	c := make([]T, len(rows))
	for j, r := range rows {
		c[j] = r[i].(T)
	}
	return c
}

// joinColumn is rows' argument i, itself an array, joined into one.
func joinColumn[T any](rows [][]any, i int) []T {
	var c []T
	for _, r := range rows {
		c = append(c, r[i].([]T)...)
	}
	return c
}

// AppendEvent stores an event; rooms.ErrDuplicate when its seq is taken.
// It is sent with the transaction's next statement.
func (t *tx) AppendEvent(_ context.Context, e rooms.Event) error {
	// The body is copied: the caller's may change before it is sent.
	body := bytes.Clone(e.Body)
	t.q.queueRow(eventRows, []any{e.ReferralID, e.Seq, string(e.Kind), e.Author, micro(e.At), body},
		func(_ pgconn.CommandTag, err error) error {
			if err != nil {
				return mapErr(err, fmt.Sprintf("append event %d to referral %s", e.Seq, e.ReferralID))
			}
			return nil
		})
	return nil
}

// eventRows are appended events; several go as one INSERT from arrays.
var eventRows = &rowKind{
	one: `INSERT INTO events (` + eventColumns + `) VALUES ($1, $2, $3, $4, $5, $6)`,
	many: func(rows [][]any) (string, []any) {
		authors := make([][]byte, len(rows))
		for i, r := range rows {
			authors[i], _ = json.Marshal(r[3]) // an Author always encodes
		}
		return `INSERT INTO events (` + eventColumns + `)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::jsonb[])`,
			[]any{column[string](rows, 0), column[int64](rows, 1), column[string](rows, 2), authors,
				column[time.Time](rows, 4), column[[]byte](rows, 5)}
	},
}

// PutPlanSection creates or replaces one section of a referral's plan.
func (t *tx) PutPlanSection(ctx context.Context, referralID string, s rooms.PlanSection) error {
	var updatedAt any
	if !s.UpdatedAt.IsZero() {
		updatedAt = micro(s.UpdatedAt)
	}
	_, err := t.q.Exec(ctx, `INSERT INTO plan_sections (referral_id, name, revision, text, updated_by, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (referral_id, name) DO UPDATE SET revision = excluded.revision, text = excluded.text,
			updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		referralID, s.Name, s.Revision, s.Text, s.UpdatedBy, updatedAt)
	if err != nil {
		return mapErr(err, fmt.Sprintf("put plan section %s of referral %s", s.Name, referralID))
	}
	return nil
}

// AddParticipant adds a participant; rooms.ErrDuplicate when already there.
func (t *tx) AddParticipant(ctx context.Context, referralID string, p rooms.Participant) error {
	b := &pgx.Batch{}
	queueParticipant(b, referralID, p)
	if err := t.q.SendBatch(ctx, b).Close(); err != nil {
		return mapErr(err, fmt.Sprintf("add participant %s to referral %s", p.UserID, referralID))
	}
	return nil
}

// SetReadMarker raises the user's read marker to seq, never lowering it.
func (t *tx) SetReadMarker(ctx context.Context, referralID, userID string, seq int64) error {
	_, err := t.q.Exec(ctx, `INSERT INTO read_markers (referral_id, user_id, seq) VALUES ($1, $2, $3)
		ON CONFLICT (referral_id, user_id) DO UPDATE SET seq = GREATEST(read_markers.seq, excluded.seq)`,
		referralID, userID, seq)
	if err != nil {
		return mapErr(err, fmt.Sprintf("set read marker of user %s in referral %s", userID, referralID))
	}
	return nil
}

// RecordCommand stores the record of a command executed in this
// transaction; rooms.ErrDuplicate when the ref is taken. It is sent with the
// transaction's next statement or its commit. The insert of a key held by a
// concurrent, uncommitted transaction waits for it: when that one commits,
// the key is taken; when it rolls back, this insert goes ahead.
func (t *tx) RecordCommand(_ context.Context, c rooms.CommandRecord) error {
	// The result is copied: the caller's may change before it is sent.
	res := bytes.Clone(c.Result)
	t.q.queueRow(commandRows, []any{c.ActorID, c.Ref, c.Kind, c.ReferralID, res, micro(c.At)},
		func(_ pgconn.CommandTag, err error) error {
			if err != nil {
				return mapErr(err, fmt.Sprintf("record command %s of user %s", c.Ref, c.ActorID))
			}
			return nil
		})
	return nil
}

// commandRows are recorded commands; several go as one INSERT from arrays.
var commandRows = &rowKind{
	one: `INSERT INTO commands (actor_id, ref, kind, referral_id, result, at) VALUES ($1, $2, $3, $4, $5, $6)`,
	many: func(rows [][]any) (string, []any) {
		return `INSERT INTO commands (actor_id, ref, kind, referral_id, result, at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])`,
			[]any{column[string](rows, 0), column[string](rows, 1), column[string](rows, 2), column[string](rows, 3),
				column[[]byte](rows, 4), column[time.Time](rows, 5)}
	},
}

// appendAuditSQL moves the head of chain $4 and stores the entry linked to
// it, hashing it as rooms.AuditEntry.ComputeHash does from the parts of
// rooms.AuditEntry.HashTemplate ($1, $2, $3). The update waits for a
// concurrent one of the same chain and then works on the head it left. A
// chain without a head makes seq NULL, which the table refuses.
const appendAuditSQL = `WITH head AS (
		UPDATE audit_chain_heads SET prev_hash = hash, seq = seq + 1,
			hash = encode(sha256($1::bytea || convert_to((seq + 1)::text, 'UTF8') || $2::bytea
				|| convert_to(hash, 'UTF8') || $3::bytea), 'hex')
		WHERE chain = $4
		RETURNING seq, prev_hash, hash
	)
	INSERT INTO audit_entries (chain, seq, at, actor_id, actor_registration, actor_role, action, event,
		referral_id, patient_nhs_number, outcome, detail, node, client_addr, prev_hash, hash)
	VALUES ($4, (SELECT seq FROM head), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
		(SELECT prev_hash FROM head), (SELECT hash FROM head))`

// AppendAudit links e after the head of its chain, stores it and moves the
// head to it, in one statement sent with the transaction's commit (no
// statement of a transaction reads the trail back). The head's row stays
// locked until the transaction ends, which is why it is locked last, with
// the other chains the transaction appends to, in the order of the chains.
func (t *tx) AppendAudit(_ context.Context, e rooms.AuditEntry) error {
	before, middle, after := e.HashTemplate()
	t.q.queueDeferred(e.Chain, appendAuditSQL,
		[]any{before, middle, after, e.Chain, micro(e.At), e.ActorID, e.ActorRegistration, string(e.ActorRole),
			string(e.Action), e.Event, e.ReferralID, e.PatientNHSNumber, e.Outcome, e.Detail, e.Node, e.ClientAddr},
		func(_ pgconn.CommandTag, err error) error {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23502" /* not_null_violation */ && pe.ColumnName == "seq" {
				return fmt.Errorf("append audit entry to chain %d: the chain has no head: %w", e.Chain, rooms.ErrNotFound)
			}
			if err != nil {
				return mapErr(err, fmt.Sprintf("append audit entry to chain %d", e.Chain))
			}
			return nil
		})
	return nil
}
