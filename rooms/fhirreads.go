package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The reads the FHIR API (SPEC §10) needs beyond the REST API's: each
// authorised and audited like every other read.

// ChangeSettle is how long after its updated time a referral's change is
// certain to have committed: a command stamps the referral inside its
// group's transaction (or one of its own, as bounded), which ends within
// groupTimeout, and the margin covers a commit in flight as that time runs
// out. A sync feed shows only settled changes, so a change that commits
// late, stamped before one already shown, is never skipped by a cursor that
// has moved past it. Stamps come from the writing node's clock and the
// horizon from the reading node's: nodes' clocks must agree within the
// margin (NTP keeps them within milliseconds).
const ChangeSettle = groupTimeout + 5*time.Second

// MaxChangesPage bounds one page of ReferralChanges.
const MaxChangesPage = 100

// ReferralChanges lists, oldest change first, up to limit referrals the
// caller may see that were updated after since, or after the cursor when
// one is given (the last of the page before), and that have settled
// (ChangeSettle). Each referral appears once per change: a change moves
// it past the cursor. The read is audited with the count it returned.
func (s *Service) ReferralChanges(ctx context.Context, c Caller, since time.Time, after *ChangeCursor, limit int) ([]Referral, error) {
	const event = "referral.sync"
	if err := checkReader(c); err != nil {
		s.auditDenied(ctx, c, ActionRead, event, err)
		return nil, err
	}
	if limit < 1 || limit > MaxChangesPage {
		return nil, Invalid("_count", "_count must be between 1 and %d", MaxChangesPage)
	}
	f := VisibleFilter(c.User, ReferralFilter{ByChange: true, Limit: limit,
		ChangedBefore: s.clock.Now().Add(-ChangeSettle)})
	if after != nil {
		f.ChangedAfter = after
	} else {
		// Stored times are whole microseconds: "after since" is at or
		// after the next one.
		f.UpdatedSince = since.Truncate(time.Microsecond).Add(time.Microsecond)
	}
	rs, err := s.store.Referrals(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list changed referrals: %w", err)
	}
	if err := s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeSuccess, fmt.Sprintf("count=%d", len(rs))); err != nil {
		return nil, err
	}
	return rs, nil
}

// PathwayOf returns the pathway a referral the caller was shown belongs
// to: pathways are configuration, not patient data, so the read is not
// audited.
func (s *Service) PathwayOf(ctx context.Context, r Referral) (Pathway, error) {
	pw, err := s.store.Pathway(ctx, r.PathwayID)
	if err != nil {
		return Pathway{}, fmt.Errorf("read pathway %s: %w", r.PathwayID, err)
	}
	return pw, nil
}

// Message returns one message of a referral the caller may see, with the
// referral, and audits the read; not_found for any other event.
func (s *Service) Message(ctx context.Context, c Caller, referralID string, seq int64) (Referral, Event, error) {
	const event = "referral.message.view"
	r, err := s.Authorize(ctx, c, referralID, event)
	if err != nil {
		return Referral{}, Event{}, err
	}
	e, err := s.store.Event(ctx, referralID, seq)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && e.Kind != EventMessage:
		_ = s.AuditCaller(ctx, c, ActionRead, event, &r, OutcomeDenied, string(CodeNotFound))
		return Referral{}, Event{}, NotFound("message")
	case err != nil:
		return Referral{}, Event{}, fmt.Errorf("read event %d of referral %s: %w", seq, referralID, err)
	}
	if err := s.AuditCaller(ctx, c, ActionRead, event, &r, OutcomeSuccess, fmt.Sprintf("seq=%d", seq)); err != nil {
		return Referral{}, Event{}, err
	}
	return r, e, nil
}

// Practitioner returns a registered clinician's professional record: name,
// regulator, registration number, organisation; what the public
// professional registers show. Accounts not yet approved are not found.
// The read is audited.
func (s *Service) Practitioner(ctx context.Context, c Caller, userID string) (User, error) {
	const event = "practitioner.view"
	if err := checkReader(c); err != nil {
		s.auditDenied(ctx, c, ActionRead, event, err)
		return User{}, err
	}
	if err := CheckID("id", userID); err != nil {
		s.auditDenied(ctx, c, ActionRead, event, err)
		return User{}, err
	}
	u, err := s.store.User(ctx, userID)
	if errors.Is(err, ErrNotFound) || err == nil && u.Status == UserPending {
		err = NotFound("practitioner")
		s.auditDenied(ctx, c, ActionRead, event, err)
		return User{}, err
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %s: %w", userID, err)
	}
	if err := s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeSuccess, "user="+u.ID); err != nil {
		return User{}, err
	}
	return u, nil
}

// OrganisationByODS returns an organisation of the directory; the read is
// audited.
func (s *Service) OrganisationByODS(ctx context.Context, c Caller, ods string) (Organisation, error) {
	const event = "organisation.view"
	if err := checkReader(c); err != nil {
		s.auditDenied(ctx, c, ActionRead, event, err)
		return Organisation{}, err
	}
	if err := ValidateODS("id", ods); err != nil {
		s.auditDenied(ctx, c, ActionRead, event, err)
		return Organisation{}, err
	}
	o, err := s.store.Organisation(ctx, ods)
	if errors.Is(err, ErrNotFound) {
		err = NotFound("organisation")
		s.auditDenied(ctx, c, ActionRead, event, err)
		return Organisation{}, err
	}
	if err != nil {
		return Organisation{}, fmt.Errorf("read organisation %s: %w", ods, err)
	}
	if err := s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeSuccess, "ods="+o.ODS); err != nil {
		return Organisation{}, err
	}
	return o, nil
}

// AuditEntryByID returns one entry of the audit trail of the admin's
// organisation (AuditTrail's rule), or of an integrator's granted
// AuditEvent reads; not_found for an entry outside it. Reading it is
// itself audited.
func (s *Service) AuditEntryByID(ctx context.Context, admin Caller, id int64) (AuditEntry, error) {
	const event = "audit.read"
	err := requireAdmin(admin)
	if CodeOf(err) == CodeForbidden {
		err = Forbidden("only admins read the audit trail")
	}
	if admin.Integration != nil {
		if err = checkReader(admin); err == nil && !admin.Allows("AuditEvent") {
			err = Forbidden("this token's scopes do not include reading AuditEvent")
		}
	}
	if err == nil && id <= 0 {
		err = Invalid("id", "id must be a positive number")
	}
	var es []AuditEntry
	if err == nil {
		es, err = s.store.AuditLog(ctx, AuditFilter{Organisation: admin.User.Organisation, ID: id, Limit: 1})
		if err != nil {
			return AuditEntry{}, fmt.Errorf("read audit entry %d: %w", id, err)
		}
		if len(es) == 0 || es[0].ID != id {
			err = NotFound("audit entry")
		}
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionRead, event, err)
		return AuditEntry{}, err
	}
	if err := s.withoutOthersPatients(ctx, admin.User.Organisation, es); err != nil {
		return AuditEntry{}, err
	}
	if err := s.AuditCaller(ctx, admin, ActionRead, event, nil, OutcomeSuccess, fmt.Sprintf("entry=%d", id)); err != nil {
		return AuditEntry{}, err
	}
	return es[0], nil
}
