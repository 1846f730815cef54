package rooms

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// AuditQuery is an admin's question of the audit trail (SPEC §9): each
// field narrows it when set. Cursor is the Next of the page before.
type AuditQuery struct {
	UserID     string
	ReferralID string
	Action     AuditAction
	Outcome    string
	From, To   string // RFC 3339 times
	Cursor     string
	Limit      int
}

// AuditPage is one page of the trail, newest first; Next is the cursor of
// the following page, empty on the last.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next"`
}

// MaxAuditPage bounds one page of the trail.
const MaxAuditPage = 500

var auditActions = []AuditAction{ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionExecute}
var auditOutcomes = []string{OutcomeSuccess, OutcomeDenied, OutcomeInvalid, OutcomeFailed}

// auditFilter checks q and turns it into a filter over the admin's
// organisation.
func auditFilter(admin Caller, q AuditQuery) (AuditFilter, error) {
	f := AuditFilter{Organisation: admin.User.Organisation, Action: q.Action, Outcome: q.Outcome, Limit: q.Limit}
	if q.UserID != "" {
		if err := ruleKey.check("user", q.UserID); err != nil {
			return f, err
		}
		f.ActorID = q.UserID
	}
	if q.ReferralID != "" {
		if err := CheckID("referral", q.ReferralID); err != nil {
			return f, err
		}
		f.ReferralID = q.ReferralID
	}
	if q.Action != "" && !slices.Contains(auditActions, q.Action) {
		return f, Invalid("action", "action must be create, read, update, delete or execute")
	}
	if q.Outcome != "" && !slices.Contains(auditOutcomes, q.Outcome) {
		return f, Invalid("outcome", "outcome must be success, denied, invalid or failed")
	}
	var err error
	if f.From, err = queryTime("from", q.From); err != nil {
		return f, err
	}
	if f.To, err = queryTime("to", q.To); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, Invalid("to", "to must be after from")
	}
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n <= 0 {
			return f, Invalid("cursor", "cursor is not one this server gave")
		}
		f.Before = n
	}
	if q.Limit < 0 || q.Limit > MaxAuditPage {
		return f, Invalid("limit", "limit must be between 1 and %d", MaxAuditPage)
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	return f, nil
}

// AuditTrail returns a page of the audit trail of the admin's organisation:
// the entries of its people and displays and of the referrals it receives
// or refers, newest first. Reading the trail is itself audited.
func (s *Service) AuditTrail(ctx context.Context, admin Caller, q AuditQuery) (AuditPage, error) {
	const event = "audit.read"
	err := requireAdmin(admin)
	var f AuditFilter
	if err == nil {
		f, err = auditFilter(admin, q)
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionRead, event, err)
		return AuditPage{}, err
	}
	want := f.Limit
	f.Limit = want + 1 // one more tells whether there is a next page
	es, err := s.store.AuditLog(ctx, f)
	if err != nil {
		return AuditPage{}, fmt.Errorf("read audit trail: %w", err)
	}
	if err := s.withoutOthersPatients(ctx, admin.User.Organisation, es); err != nil {
		return AuditPage{}, err
	}
	page := AuditPage{Entries: es}
	if len(es) > want {
		page.Entries = es[:want]
		page.Next = strconv.FormatInt(es[want-1].ID, 10)
	}
	if page.Entries == nil {
		page.Entries = []AuditEntry{}
	}
	detail := fmt.Sprintf("count=%d", len(page.Entries))
	if err := s.AuditCaller(ctx, admin, ActionRead, event, nil, OutcomeSuccess, detail); err != nil {
		return AuditPage{}, err
	}
	return page, nil
}

// queryTime parses an optional RFC 3339 time of a query.
func queryTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, Invalid(field, "%s must be a time such as 2026-12-01T09:00:00Z", field)
	}
	return t.UTC(), nil
}

// withoutOthersPatients blanks the patient of entries about referrals the
// organisation neither receives nor refers: its own people's refused
// attempts at another organisation's referral. (They are written without
// the patient; entries written before that rule are blanked here.)
func (s *Service) withoutOthersPatients(ctx context.Context, ods string, es []AuditEntry) error {
	ours := map[string]bool{}
	for i := range es {
		e := &es[i]
		if e.PatientNHSNumber == "" || e.ReferralID == "" {
			continue
		}
		mine, ok := ours[e.ReferralID]
		if !ok {
			r, err := s.store.Referral(ctx, e.ReferralID)
			if err != nil && CodeOf(err) != CodeNotFound {
				return fmt.Errorf("read referral %s of an audit entry: %w", e.ReferralID, err)
			}
			mine = err == nil && (r.ReceivingOrganisation == ods || r.ReferringOrganisation == ods)
			ours[e.ReferralID] = mine
		}
		if !mine {
			e.PatientNHSNumber = ""
		}
	}
	return nil
}
