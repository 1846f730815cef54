package sqlite

import (
	"context"
	"fmt"
	"strings"

	"patientpass/rooms"
)

// defaultAuditLimit caps an AuditLog read whose filter sets no limit.
const defaultAuditLimit = 500

const auditColumns = `id, chain, seq, at, actor_id, actor_registration, actor_role, action, event,
	referral_id, patient_nhs_number, outcome, detail, node, client_addr, prev_hash, hash`

func scanAudit(row interface{ Scan(...any) error }) (rooms.AuditEntry, error) {
	var (
		e            rooms.AuditEntry
		when         int64
		role, action string
	)
	err := row.Scan(&e.ID, &e.Chain, &e.Seq, &when, &e.ActorID, &e.ActorRegistration, &role, &action, &e.Event,
		&e.ReferralID, &e.PatientNHSNumber, &e.Outcome, &e.Detail, &e.Node, &e.ClientAddr, &e.PrevHash, &e.Hash)
	if err != nil {
		return rooms.AuditEntry{}, err
	}
	e.At = fromMicros(when)
	e.ActorRole, e.Action = rooms.Role(role), rooms.AuditAction(action)
	return e, nil
}

// AppendAudit links e after the head of its chain, stores it and moves the
// head to it. The transaction holds the write lock, so the head cannot move
// under it; the database refuses the move unless the entry is the next one
// in its chain.
func (t *Tx) AppendAudit(ctx context.Context, e rooms.AuditEntry) error {
	head := rooms.AuditHead{Chain: e.Chain}
	err := t.tx.QueryRowContext(ctx, "SELECT seq, hash FROM audit_chain_heads WHERE chain = ?", e.Chain).Scan(&head.Seq, &head.Hash)
	if err != nil {
		return notFound(err, "append audit entry to chain %d: read its head", e.Chain)
	}
	e.Link(head)
	_, err = t.tx.ExecContext(ctx, `INSERT INTO audit_entries (chain, seq, at, actor_id, actor_registration, actor_role,
		action, event, referral_id, patient_nhs_number, outcome, detail, node, client_addr, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Chain, e.Seq, micros(e.At), e.ActorID, e.ActorRegistration, string(e.ActorRole),
		string(e.Action), e.Event, e.ReferralID, e.PatientNHSNumber, e.Outcome, e.Detail, e.Node, e.ClientAddr,
		e.PrevHash, e.Hash)
	if err != nil {
		return mapWrite(err, "append audit entry %d to chain %d", e.Seq, e.Chain)
	}
	res, err := t.tx.ExecContext(ctx, "UPDATE audit_chain_heads SET seq = ?, hash = ? WHERE chain = ?", e.Seq, e.Hash, e.Chain)
	if err := oneRow(res, err, "move head of audit chain %d", e.Chain); err != nil {
		return fmt.Errorf("append audit entry %d to chain %d: %w", e.Seq, e.Chain, err)
	}
	return nil
}

// AuditHeads returns the head of every audit chain.
func (s *Store) AuditHeads(ctx context.Context) ([]rooms.AuditHead, error) {
	rows, err := s.read.QueryContext(ctx, "SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain")
	if err != nil {
		return nil, fmt.Errorf("read audit chain heads: %w", err)
	}
	defer rows.Close()
	var out []rooms.AuditHead
	for rows.Next() {
		var h rooms.AuditHead
		if err := rows.Scan(&h.Chain, &h.Seq, &h.Hash); err != nil {
			return nil, fmt.Errorf("read audit chain heads: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit chain heads: %w", err)
	}
	return out, nil
}

// AuditEntries returns up to limit entries of one chain after position
// afterSeq, in chain order; limit <= 0 means no limit.
func (s *Store) AuditEntries(ctx context.Context, chain int, afterSeq int64, limit int) ([]rooms.AuditEntry, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return s.queryAudit(ctx, fmt.Sprintf("read audit chain %d", chain),
		"SELECT "+auditColumns+" FROM audit_entries WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?",
		chain, afterSeq, limit)
}

// AuditLog lists audit entries matching f, newest first; a filter without a
// limit returns at most 500.
func (s *Store) AuditLog(ctx context.Context, f rooms.AuditFilter) ([]rooms.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	for _, c := range []struct{ column, value string }{
		{"referral_id", f.ReferralID},
		{"actor_id", f.ActorID},
		{"event", f.Event},
		{"outcome", f.Outcome},
		{"action", string(f.Action)},
	} {
		if c.value != "" {
			where = append(where, c.column+" = ?")
			args = append(args, c.value)
		}
	}
	if f.Organisation != "" {
		where = append(where, auditOfOrganisation)
		for range strings.Count(auditOfOrganisation, "?") {
			args = append(args, f.Organisation)
		}
	}
	if !f.From.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "at < ?")
		args = append(args, micros(f.To))
	}
	if f.ID != 0 {
		where = append(where, "id = ?")
		args = append(args, f.ID)
	}
	if f.Before != 0 {
		where = append(where, "id < ?")
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	args = append(args, limit)
	return s.queryAudit(ctx, "read audit log",
		"SELECT "+auditColumns+" FROM audit_entries"+whereClause(where)+" ORDER BY id DESC LIMIT ?", args...)
}

// auditOfOrganisation keeps the entries of the organisation whose code is
// in each ?: those whose actor is one of its users, displays or
// integrators (acting as "display:<id>", "integration:<client id>"), and
// those about a referral it receives or refers.
const auditOfOrganisation = `(actor_id IN (SELECT id FROM users WHERE organisation = ?)
	OR actor_id IN (SELECT 'display:' || id FROM displays WHERE organisation = ?)
	OR actor_id IN (SELECT 'integration:' || client_id FROM integrations WHERE organisation = ?)
	OR (referral_id <> '' AND referral_id IN (SELECT id FROM referrals
		WHERE receiving_organisation = ? OR referring_organisation = ?)))`

func (s *Store) queryAudit(ctx context.Context, what, query string, args ...any) ([]rooms.AuditEntry, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []rooms.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
