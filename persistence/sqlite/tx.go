package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"patientpass/rooms"
)

// Tx is one write transaction of the store. It holds SQLite's write lock
// from its first statement, so everything it reads stays as read until it
// ends.
type Tx struct {
	reader
	tx *sql.Tx
}

var _ rooms.Tx = (*Tx)(nil)

// PutOrganisation creates or renames an organisation.
func (t *Tx) PutOrganisation(ctx context.Context, o rooms.Organisation) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO organisations (ods, name) VALUES (?, ?)
		ON CONFLICT (ods) DO UPDATE SET name = excluded.name`, o.ODS, o.Name)
	return mapWrite(err, "put organisation %s", o.ODS)
}

// CreateUser stores a new user; rooms.ErrDuplicate when the email is taken.
func (t *Tx) CreateUser(ctx context.Context, u rooms.User) error {
	roles, err := json.Marshal(u.Roles)
	if err != nil {
		return fmt.Errorf("encode roles of user %s: %w", u.ID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`, email_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, string(u.ProfessionalBody), u.RegistrationNumber, u.Organisation,
		string(roles), string(u.Status), u.PasswordHash, u.TOTPSecret, u.TOTPPendingSecret,
		micros(u.CreatedAt), micros(u.UpdatedAt), rooms.NormaliseEmail(u.Email))
	return mapWrite(err, "create user %s", u.ID)
}

// UpdateUser replaces every stored field of the user with id u.ID. The last
// TOTP step used is not a field of rooms.User and is kept.
func (t *Tx) UpdateUser(ctx context.Context, u rooms.User) error {
	roles, err := json.Marshal(u.Roles)
	if err != nil {
		return fmt.Errorf("encode roles of user %s: %w", u.ID, err)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE users SET email = ?, email_key = ?, name = ?,
		professional_body = ?, registration_number = ?, organisation = ?, roles = ?, status = ?,
		password_hash = ?, totp_secret = ?, totp_pending_secret = ?, created_at = ?, updated_at = ?
		WHERE id = ?`,
		u.Email, rooms.NormaliseEmail(u.Email), u.Name, string(u.ProfessionalBody), u.RegistrationNumber,
		u.Organisation, string(roles), string(u.Status), u.PasswordHash, u.TOTPSecret, u.TOTPPendingSecret,
		micros(u.CreatedAt), micros(u.UpdatedAt), u.ID)
	return oneRow(res, mapWrite(err, "update user %s", u.ID), "update user %s", u.ID)
}

// PutPathway creates or replaces a pathway.
func (t *Tx) PutPathway(ctx context.Context, p rooms.Pathway) error {
	def, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode pathway %s: %w", p.ID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO pathways (id, receiving_organisation, definition) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET receiving_organisation = excluded.receiving_organisation,
			definition = excluded.definition`,
		p.ID, p.ReceivingOrganisation, string(def))
	return mapWrite(err, "put pathway %s", p.ID)
}

// CreateReferral stores a new referral and its participants;
// rooms.ErrDuplicate when the id is taken.
func (t *Tx) CreateReferral(ctx context.Context, r rooms.Referral) error {
	form, referrer, outcomes, err := encodeReferral(r)
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO referrals (`+referralColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.PathwayID, string(r.Status), string(r.Priority),
		r.Patient.NHSNumber, r.Patient.Name, r.Patient.DateOfBirth, r.Patient.Sex,
		form, r.ContactPhone, r.ConsultantDiscussed, referrer,
		r.ReferringOrganisation, r.ReceivingOrganisation, nullString(r.AssigneeID), outcomes,
		nullMicros(r.SubmittedAt), nullMicros(r.TriageDueAt),
		micros(r.StatusChangedAt), nullMicros(r.TriagedAt), nullMicros(r.ReminderAt),
		micros(r.CreatedAt), micros(r.UpdatedAt), r.HeadSeq)
	if err != nil {
		return mapWrite(err, "create referral %s", r.ID)
	}
	for _, p := range r.Participants {
		if err := t.AddParticipant(ctx, r.ID, p); err != nil {
			return fmt.Errorf("create referral %s: %w", r.ID, err)
		}
	}
	return nil
}

func encodeReferral(r rooms.Referral) (form, referrer string, outcomes sql.NullString, err error) {
	f, err := json.Marshal(r.Form)
	if err != nil {
		return "", "", outcomes, fmt.Errorf("encode form of referral %s: %w", r.ID, err)
	}
	a, err := json.Marshal(r.Referrer)
	if err != nil {
		return "", "", outcomes, fmt.Errorf("encode referrer of referral %s: %w", r.ID, err)
	}
	if len(r.Outcomes) > 0 {
		o, err := json.Marshal(r.Outcomes)
		if err != nil {
			return "", "", outcomes, fmt.Errorf("encode outcomes of referral %s: %w", r.ID, err)
		}
		outcomes = sql.NullString{String: string(o), Valid: true}
	}
	return string(f), string(a), outcomes, nil
}

// LockReferral reads a referral. The transaction already holds the database's
// write lock, so nobody can change the referral until it ends.
func (t *Tx) LockReferral(ctx context.Context, id string) (rooms.Referral, error) {
	return t.Referral(ctx, id)
}

// UpdateReferral stores the referral's mutable state.
func (t *Tx) UpdateReferral(ctx context.Context, r rooms.Referral) error {
	form, _, outcomes, err := encodeReferral(r)
	if err != nil {
		return err
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE referrals SET status = ?, priority = ?, form = ?,
		contact_phone = ?, consultant_discussed = ?, assignee_id = ?, outcomes = ?,
		submitted_at = ?, triage_due_at = ?, status_changed_at = ?, triaged_at = ?, reminder_at = ?,
		updated_at = ?, head_seq = ?
		WHERE id = ?`,
		string(r.Status), string(r.Priority), form, r.ContactPhone, r.ConsultantDiscussed,
		nullString(r.AssigneeID), outcomes, nullMicros(r.SubmittedAt), nullMicros(r.TriageDueAt),
		micros(r.StatusChangedAt), nullMicros(r.TriagedAt), nullMicros(r.ReminderAt),
		micros(r.UpdatedAt), r.HeadSeq, r.ID)
	return oneRow(res, mapWrite(err, "update referral %s", r.ID), "update referral %s", r.ID)
}

// AppendEvent stores an event; rooms.ErrDuplicate when its seq is taken.
func (t *Tx) AppendEvent(ctx context.Context, e rooms.Event) error {
	author, err := json.Marshal(e.Author)
	if err != nil {
		return fmt.Errorf("encode author of event %d of referral %s: %w", e.Seq, e.ReferralID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO events (referral_id, seq, kind, author, at, body)
		VALUES (?, ?, ?, ?, ?, ?)`,
		e.ReferralID, e.Seq, string(e.Kind), string(author), micros(e.At), string(e.Body))
	return mapWrite(err, "append event %d to referral %s", e.Seq, e.ReferralID)
}

// PutPlanSection creates or replaces one section of a referral's plan.
func (t *Tx) PutPlanSection(ctx context.Context, referralID string, s rooms.PlanSection) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO plan_sections (referral_id, name, revision, text, updated_by, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (referral_id, name) DO UPDATE SET revision = excluded.revision, text = excluded.text,
			updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		referralID, s.Name, s.Revision, s.Text, s.UpdatedBy, micros(s.UpdatedAt))
	return mapWrite(err, "put plan section %s of referral %s", s.Name, referralID)
}

// AddParticipant adds a participant; rooms.ErrDuplicate when already there.
func (t *Tx) AddParticipant(ctx context.Context, referralID string, p rooms.Participant) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO participants (referral_id, user_id, name, added_by, added_at)
		VALUES (?, ?, ?, ?, ?)`, referralID, p.UserID, p.Name, p.AddedBy, micros(p.AddedAt))
	return mapWrite(err, "add participant %s to referral %s", p.UserID, referralID)
}

// SetReadMarker raises the user's read marker to seq; a lower seq leaves it
// as it is.
func (t *Tx) SetReadMarker(ctx context.Context, referralID, userID string, seq int64) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO read_markers (referral_id, user_id, seq) VALUES (?, ?, ?)
		ON CONFLICT (referral_id, user_id) DO UPDATE SET seq = max(read_markers.seq, excluded.seq)`,
		referralID, userID, seq)
	return mapWrite(err, "set read marker of user %s in referral %s", userID, referralID)
}

// RecordCommand stores the record of a command executed in this
// transaction; rooms.ErrDuplicate when the ref is taken. Transactions never
// overlap here, so a record present is always a committed one.
func (t *Tx) RecordCommand(ctx context.Context, c rooms.CommandRecord) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO commands (actor_id, ref, kind, referral_id, result, at)
		VALUES (?, ?, ?, ?, ?, ?)`, c.ActorID, c.Ref, c.Kind, c.ReferralID, string(c.Result), micros(c.At))
	return mapWrite(err, "record command %s of user %s", c.Ref, c.ActorID)
}

// oneRow checks that an UPDATE found its row: rooms.ErrNotFound otherwise.
func oneRow(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), rooms.ErrNotFound)
	}
	return nil
}
