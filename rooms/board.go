package rooms

import (
	"context"
	"fmt"
	"time"
)

// BoardItem is one referral on the triage board: what a coordinator needs
// to see at a glance, without the form or the plan.
type BoardItem struct {
	ID                    string     `json:"id"`
	ShortRef              string     `json:"short_ref"`
	PathwayID             string     `json:"pathway"`
	Status                Status     `json:"status"`
	Priority              Priority   `json:"priority"`
	Patient               Patient    `json:"patient"`
	Referrer              Author     `json:"referrer"`
	ReferringOrganisation string     `json:"referring_organisation"`
	ReceivingOrganisation string     `json:"receiving_organisation"`
	SubmittedAt           *time.Time `json:"submitted_at,omitempty"`
	TriageDueAt           *time.Time `json:"triage_due_at"`
	// TimeLeftSeconds is how long until the deadline when the item was
	// made; negative once overdue. Clients count down from TriageDueAt.
	TimeLeftSeconds *int64 `json:"time_left_seconds,omitempty"`
	DueSoon         bool   `json:"due_soon"`
	Overdue         bool   `json:"overdue"`
	// Assignee is who has the referral, nil when nobody has.
	Assignee       *Author   `json:"assignee"`
	LastActivityAt time.Time `json:"last_activity_at"`
	CreatedAt      time.Time `json:"created_at"`
	HeadSeq        int64     `json:"head_seq"`
	// Unread counts the events after the viewer's read marker. It is the
	// viewer's own, so it is set in the board read and the snapshot, and
	// absent from the updates every viewer shares: a client keeps its own
	// count from head_seq and its read marker.
	Unread *int64 `json:"unread,omitempty"`
	// ReadSeq is the viewer's read marker (with Unread).
	ReadSeq *int64 `json:"read_seq,omitempty"`
}

// Board is a pathway's triage queue, earliest deadline first.
type Board struct {
	Pathway     string      `json:"pathway"`
	GeneratedAt time.Time   `json:"generated_at"`
	Referrals   []BoardItem `json:"referrals"`
	// Truncated reports that the queue is longer than MaxBoardItems (or
	// MaxBoardBytes) and only its earliest deadlines are listed.
	Truncated bool `json:"truncated"`
}

// BoardUpdate is one change of a board, in commit order: a referral's new
// item, or the id of one that left the queue.
type BoardUpdate struct {
	Referral *BoardItem `json:"referral,omitempty"`
	Removed  string     `json:"removed,omitempty"`
	// HeadSeq is, with Removed, the referral's seq when it left: an update
	// older than what a client holds can be recognised and dropped.
	HeadSeq int64 `json:"head_seq,omitempty"`
}

// OrderKey is what the update is about and as of which seq, so a screen is
// never sent an older state of a referral after a newer one.
func (u BoardUpdate) OrderKey() (string, int64) {
	if u.Referral != nil {
		return u.Referral.ID, u.Referral.HeadSeq
	}
	return u.Removed, u.HeadSeq
}

// OrderSeqs is, for each referral on the board, the seq it shows.
func (b Board) OrderSeqs() map[string]int64 {
	m := make(map[string]int64, len(b.Referrals))
	for _, it := range b.Referrals {
		m[it.ID] = it.HeadSeq
	}
	return m
}

// MaxBoardBytes bounds a board's encoded size, so its snapshot fits one
// 64 KiB frame whatever its patients' names and referrers are.
const MaxBoardBytes = 56 << 10

// MaxBoardItems bounds a board: a snapshot must fit one frame. A queue
// longer than this is an incident, and Truncated says so.
const MaxBoardItems = 60

// openStatuses are the statuses of the board's queue.
var openStatuses = []Status{StatusSubmitted, StatusInTriage, StatusMoreInfoNeeded}

// boardItem makes r's board item at the service's clock; marker, when set,
// is the viewer's read marker.
func (s *Service) boardItem(ctx context.Context, r Referral, marker *int64) *BoardItem {
	now := s.clock.Now()
	it := &BoardItem{ID: r.ID, ShortRef: r.ShortRef(), PathwayID: r.PathwayID, Status: r.Status, Priority: r.Priority,
		Patient: r.Patient, Referrer: r.Referrer, ReferringOrganisation: r.ReferringOrganisation,
		ReceivingOrganisation: r.ReceivingOrganisation, SubmittedAt: r.SubmittedAt, TriageDueAt: r.TriageDueAt,
		LastActivityAt: r.UpdatedAt, CreatedAt: r.CreatedAt, HeadSeq: r.HeadSeq}
	if r.TriageDueAt != nil {
		left := int64(r.TriageDueAt.Sub(now) / time.Second)
		it.TimeLeftSeconds = &left
		if r.Status.AwaitingTriage() && r.SubmittedAt != nil {
			it.DueSoon, it.Overdue = DueStatus(*r.SubmittedAt, *r.TriageDueAt, now)
		}
	}
	if r.AssigneeID != "" {
		a := Author{ID: r.AssigneeID}
		if u, err := s.store.User(ctx, r.AssigneeID); err == nil {
			a = AuthorOf(u)
		}
		it.Assignee = &a
	}
	if marker != nil {
		unread := max(r.HeadSeq-*marker, 0)
		it.Unread, it.ReadSeq = &unread, marker
	}
	return it
}

// canSeeBoard reports whether u may watch the board of pathway pw: its
// receiving organisation's coordinators and specialists.
func canSeeBoard(u User, pw Pathway) bool {
	return u.Organisation == pw.ReceivingOrganisation && (u.HasRole(RoleCoordinator) || u.HasRole(RoleSpecialist))
}

// AuthorizeBoard decides whether the caller may watch a pathway's board,
// and audits the decision; event names the interaction ("board.view",
// "board.subscribe"). A pathway the caller may not see is not found.
func (s *Service) AuthorizeBoard(ctx context.Context, c Caller, pathwayID, event string) error {
	if err := checkCaller(c); err != nil {
		_ = s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeDenied, string(CodeOf(err)))
		return err
	}
	if pathwayID == "" {
		return Invalid("pathway", "pathway is required, such as mscc")
	}
	if err := ruleKey.check("pathway", pathwayID); err != nil {
		_ = s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeInvalid, "pathway")
		return err
	}
	pw, err := s.store.Pathway(ctx, pathwayID)
	if err != nil && CodeOf(err) != CodeNotFound {
		return fmt.Errorf("read pathway %s: %w", pathwayID, err)
	}
	if err != nil || !canSeeBoard(c.User, pw) {
		_ = s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeDenied, "not_found pathway="+auditSafe(pathwayID))
		return NotFound("pathway board")
	}
	return s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeSuccess, "pathway="+pw.ID)
}

// Board returns a pathway's triage queue for the caller, earliest deadline
// first, each item with the caller's unread count. It checks the caller may
// see it; AuthorizeBoard audits the view or subscription.
func (s *Service) Board(ctx context.Context, c Caller, pathwayID string) (Board, error) {
	if err := checkCaller(c); err != nil {
		return Board{}, err
	}
	pw, err := s.store.Pathway(ctx, pathwayID)
	if err != nil && CodeOf(err) != CodeNotFound {
		return Board{}, fmt.Errorf("read pathway %s: %w", pathwayID, err)
	}
	if err != nil || !canSeeBoard(c.User, pw) {
		return Board{}, NotFound("pathway board")
	}
	rs, err := s.store.Referrals(ctx, ReferralFilter{ReceivingOrganisation: pw.ReceivingOrganisation, PathwayID: pw.ID,
		Status: openStatuses, Limit: MaxBoardItems + 1})
	if err != nil {
		return Board{}, fmt.Errorf("read board of %s: %w", pw.ID, err)
	}
	b := Board{Pathway: pw.ID, GeneratedAt: s.clock.Now(), Referrals: []BoardItem{}}
	if len(rs) > MaxBoardItems {
		b.Truncated, rs = true, rs[:MaxBoardItems]
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	markers, err := s.store.ReadMarkers(ctx, c.User.ID, ids)
	if err != nil {
		return Board{}, fmt.Errorf("read markers for board of %s: %w", pw.ID, err)
	}
	size := len(mustJSON(b))
	for _, r := range rs {
		m := markers[r.ID]
		it := s.boardItem(ctx, r, &m)
		if size += len(mustJSON(it)) + 1; size > MaxBoardBytes {
			b.Truncated = true
			break
		}
		b.Referrals = append(b.Referrals, *it)
	}
	return b, nil
}
