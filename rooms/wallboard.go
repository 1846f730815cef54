package rooms

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Wallboard is an organisation's bed demand and flow for a screen in a
// bed-management office (SPEC §9). It carries minimal identifiers only:
// initials, age and a short reference, never an NHS number, name or date of
// birth.
type Wallboard struct {
	Organisation          Organisation    `json:"organisation"`
	GeneratedAt           time.Time       `json:"generated_at"`
	OPEL                  *OPEL           `json:"opel"`
	AwaitingTriage        AwaitingTriage  `json:"awaiting_triage"`
	InTriage              int             `json:"in_triage"`
	MoreInfoNeeded        int             `json:"more_info_needed"`
	AwaitingBed           map[string]int  `json:"awaiting_bed"`
	TransfersBooked       int             `json:"transfers_booked"`
	TransferredToday      int             `json:"transferred_today"`
	ManagedRemotelyToday  int             `json:"managed_remotely_today"`
	ManagedRemotely7d     int             `json:"managed_remotely_7d"`
	BreachesToday         int             `json:"breaches_today"`
	MedianMinutesToTriage MedianMinutes   `json:"median_minutes_to_triage"`
	Items                 []WallboardItem `json:"items"`
}

// AwaitingTriage counts the referrals submitted and not yet claimed, by
// priority, and those on the triage clock (submitted or in triage) past
// their deadline.
type AwaitingTriage struct {
	Emergency int `json:"emergency"`
	Urgent    int `json:"urgent"`
	Routine   int `json:"routine"`
	Overdue   int `json:"overdue"`
}

// MedianMinutes is the median time from submission to triage decision of
// the referrals triaged in a period; nil when none was.
type MedianMinutes struct {
	Today *float64 `json:"today"`
	Week  *float64 `json:"7d"`
}

// WallboardItem is one live referral on the wallboard.
type WallboardItem struct {
	ShortRef string     `json:"short_ref"`
	Initials string     `json:"initials"`
	Age      int        `json:"age"`
	Priority Priority   `json:"priority"`
	Status   Status     `json:"status"`
	DueAt    *time.Time `json:"due_at"`
	BedType  string     `json:"bed_type,omitempty"`
	Overdue  bool       `json:"overdue"`
}

// MaxWallboardItems bounds the items listed: a wall screen shows the
// queue's head, and the counts say the rest.
const MaxWallboardItems = 40

// wallboardLive are the statuses whose referrals are listed as items and
// counted as demand.
var wallboardLive = []Status{StatusSubmitted, StatusInTriage, StatusMoreInfoNeeded, StatusAccepted, StatusTransferBooked}

// maxWallboardRows bounds the referrals one wallboard reads.
const maxWallboardRows = 5000

// canSeeWallboard reports whether the caller may see organisation's
// wallboard: its displays, bed managers, coordinators, specialists and
// admins.
func canSeeWallboard(c Caller) bool {
	u := c.User
	return c.DisplayID != "" || u.HasRole(RoleBedManager) || u.HasRole(RoleCoordinator) ||
		u.HasRole(RoleSpecialist) || u.HasRole(RoleAdmin)
}

// AuthorizeWallboard decides whether the caller may see their
// organisation's wallboard, and audits the decision; event names the
// interaction ("wallboard.view", "wallboard.subscribe").
func (s *Service) AuthorizeWallboard(ctx context.Context, c Caller, event string) error {
	err := checkViewer(c)
	if err == nil && !canSeeWallboard(c) {
		err = Forbidden("the wallboard is for bed managers, coordinators, specialists and admins")
	}
	if err != nil {
		_ = s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeDenied, string(CodeOf(err)))
		return err
	}
	return s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeSuccess, "organisation="+c.User.Organisation)
}

// Wallboard returns the caller's organisation's wallboard. The caller has
// been authorised (AuthorizeWallboard).
func (s *Service) Wallboard(ctx context.Context, c Caller) (Wallboard, error) {
	if err := checkViewer(c); err != nil {
		return Wallboard{}, err
	}
	if !canSeeWallboard(c) {
		return Wallboard{}, Forbidden("the wallboard is for bed managers, coordinators, specialists and admins")
	}
	return s.wallboard(ctx, c.User.Organisation)
}

func (s *Service) wallboard(ctx context.Context, ods string) (Wallboard, error) {
	now := s.clock.Now()
	org, err := s.store.Organisation(ctx, ods)
	if err != nil {
		return Wallboard{}, fmt.Errorf("read organisation %s: %w", ods, err)
	}
	live, err := s.store.Referrals(ctx, ReferralFilter{ReceivingOrganisation: ods, Status: wallboardLive, Limit: maxWallboardRows})
	if err != nil {
		return Wallboard{}, fmt.Errorf("read live referrals of %s: %w", ods, err)
	}
	recent, err := s.store.Referrals(ctx, ReferralFilter{ReceivingOrganisation: ods, UpdatedSince: now.Add(-7 * 24 * time.Hour), Limit: maxWallboardRows})
	if err != nil {
		return Wallboard{}, fmt.Errorf("read recent referrals of %s: %w", ods, err)
	}
	pathways, err := s.store.Pathways(ctx)
	if err != nil {
		return Wallboard{}, fmt.Errorf("list pathways: %w", err)
	}
	var bedTypes []string
	for _, pw := range pathways {
		if pw.ReceivingOrganisation == ods {
			bedTypes = append(bedTypes, pw.BedTypes...)
		}
	}
	w := CountWallboard(org, bedTypes, mergeReferrals(live, recent), now)
	if o, err := s.store.OPEL(ctx, ods); err == nil {
		w.OPEL = &o
	} else if CodeOf(err) != CodeNotFound {
		return Wallboard{}, fmt.Errorf("read OPEL level of %s: %w", ods, err)
	}
	return w, nil
}

// mergeReferrals returns the referrals of both lists, once each.
func mergeReferrals(a, b []Referral) []Referral {
	seen := make(map[string]bool, len(a))
	out := make([]Referral, 0, len(a)+len(b))
	for _, l := range [][]Referral{a, b} {
		for _, r := range l {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// StartOfDay is the start of t's day in Europe/London: "today" on a
// wallboard is the London day.
func StartOfDay(t time.Time) time.Time {
	l := t.In(London)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, London)
}

// CountWallboard counts the wallboard of org at now from its referrals
// (those live, and those updated in the last seven days). The rules, which
// the tests check against SQL counts:
//   - awaiting triage: submitted, by priority; overdue: submitted or in
//     triage with the deadline passed;
//   - awaiting bed: accepted, by the bed type accepted for;
//   - transferred / managed remotely today and in 7 days: by when the
//     referral entered that status;
//   - breaches today: a deadline that fell today, before now, and was not
//     met (not triaged by then);
//   - median minutes to triage: triaged today or in 7 days, from
//     submission to the decision.
func CountWallboard(org Organisation, bedTypes []string, rs []Referral, now time.Time) Wallboard {
	today := StartOfDay(now)
	week := now.Add(-7 * 24 * time.Hour)
	w := Wallboard{Organisation: org, GeneratedAt: now, AwaitingBed: map[string]int{}, Items: []WallboardItem{}}
	for _, b := range bedTypes {
		w.AwaitingBed[b] = 0
	}
	var minsToday, minsWeek []float64
	for _, r := range rs {
		overdue := r.Status.AwaitingTriage() && r.TriageDueAt != nil && !now.Before(*r.TriageDueAt)
		if overdue {
			w.AwaitingTriage.Overdue++
		}
		switch r.Status {
		case StatusSubmitted:
			switch r.Priority {
			case PriorityEmergency:
				w.AwaitingTriage.Emergency++
			case PriorityUrgent:
				w.AwaitingTriage.Urgent++
			case PriorityRoutine:
				w.AwaitingTriage.Routine++
			}
		case StatusInTriage:
			w.InTriage++
		case StatusMoreInfoNeeded:
			w.MoreInfoNeeded++
		case StatusAccepted:
			w.AwaitingBed[outcomeString(r, StatusAccepted, "bed_type")]++
		case StatusTransferBooked:
			w.TransfersBooked++
		case StatusTransferred:
			if !r.StatusChangedAt.Before(today) {
				w.TransferredToday++
			}
		case StatusManagedRemotely:
			if !r.StatusChangedAt.Before(today) {
				w.ManagedRemotelyToday++
			}
			if !r.StatusChangedAt.Before(week) {
				w.ManagedRemotely7d++
			}
		}
		if d := r.TriageDueAt; d != nil && r.SubmittedAt != nil && !d.Before(today) && !d.After(now) &&
			(r.TriagedAt == nil && r.Status.AwaitingTriage() || r.TriagedAt != nil && r.TriagedAt.After(*d)) {
			w.BreachesToday++
		}
		if t := r.TriagedAt; t != nil && r.SubmittedAt != nil {
			mins := t.Sub(*r.SubmittedAt).Minutes()
			if !t.Before(today) {
				minsToday = append(minsToday, mins)
			}
			if !t.Before(week) {
				minsWeek = append(minsWeek, mins)
			}
		}
		if slices.Contains(wallboardLive, r.Status) {
			it := WallboardItem{ShortRef: r.ShortRef(), Initials: Initials(r.Patient.Name), Age: AgeAt(r.Patient.DateOfBirth, now),
				Priority: r.Priority, Status: r.Status, DueAt: r.TriageDueAt, Overdue: overdue}
			switch r.Status {
			case StatusAccepted:
				it.BedType = outcomeString(r, StatusAccepted, "bed_type")
			case StatusTransferBooked:
				it.BedType = outcomeString(r, StatusTransferBooked, "bed_type")
			}
			w.Items = append(w.Items, it)
		}
	}
	w.MedianMinutesToTriage = MedianMinutes{Today: median(minsToday), Week: median(minsWeek)}
	sort.SliceStable(w.Items, func(i, j int) bool { return itemBefore(w.Items[i], w.Items[j]) })
	if len(w.Items) > MaxWallboardItems {
		w.Items = w.Items[:MaxWallboardItems]
	}
	return w
}

// itemBefore orders a wallboard's items: waiting for triage by deadline
// first, then waiting for a bed, then booked transfers.
func itemBefore(a, b WallboardItem) bool {
	rank := func(s Status) int {
		switch s {
		case StatusSubmitted, StatusInTriage:
			return 0
		case StatusMoreInfoNeeded:
			return 1
		case StatusAccepted:
			return 2
		}
		return 3
	}
	if ra, rb := rank(a.Status), rank(b.Status); ra != rb {
		return ra < rb
	}
	if a.DueAt != nil && b.DueAt != nil && !a.DueAt.Equal(*b.DueAt) {
		return a.DueAt.Before(*b.DueAt)
	}
	return a.ShortRef < b.ShortRef
}

// outcomeString is the text of one key of r's outcome for status, or "".
func outcomeString(r Referral, status Status, key string) string {
	s, _ := r.Outcomes[status][key].(string)
	return s
}

func median(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	slices.Sort(xs)
	m := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		m = (xs[len(xs)/2-1] + m) / 2
	}
	m = float64(int64(m*10+0.5)) / 10 // to a tenth of a minute
	return &m
}

// Initials are the first letters of a name's first and last words,
// capitalised: "Margaret Ellis" is "ME".
func Initials(name string) string {
	words := strings.Fields(name)
	if len(words) == 0 {
		return ""
	}
	first := func(w string) string {
		for _, r := range w {
			if unicode.IsLetter(r) {
				return string(unicode.ToUpper(r))
			}
		}
		return ""
	}
	if len(words) == 1 {
		return first(words[0])
	}
	return first(words[0]) + first(words[len(words)-1])
}

// AgeAt is the age in whole years at now (Europe/London) of someone born on
// dob (YYYY-MM-DD); 0 when dob is not a date.
func AgeAt(dob string, now time.Time) int {
	born, err := time.Parse(time.DateOnly, dob)
	if err != nil {
		return 0
	}
	l := now.In(London)
	age := l.Year() - born.Year()
	if l.Month() < born.Month() || l.Month() == born.Month() && l.Day() < born.Day() {
		age--
	}
	return max(age, 0)
}
