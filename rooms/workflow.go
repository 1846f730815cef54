package rooms

import (
	"context"
	"time"
)

// Watcher is told, after each commit, what the live views of the workflow
// must show: a board item that changed or left its queue, an organisation's
// new wallboard, a user's new notification, the system notice. The hub maps
// each to its topic. Like Publisher, it is a wake-up for screens, never the
// record: every view can be read again from the store.
type Watcher interface {
	BoardChanged(pathway string, u BoardUpdate)
	WallboardChanged(organisation string, w Wallboard)
	Notified(userID string, u UserUpdate)
	NoticeChanged(n *SystemNotice)
}

// NoWatcher ignores everything: for commands run where nobody watches
// (command-line tools, seeding).
type NoWatcher struct{}

func (NoWatcher) BoardChanged(string, BoardUpdate)   {}
func (NoWatcher) WallboardChanged(string, Wallboard) {}
func (NoWatcher) Notified(string, UserUpdate)        {}
func (NoWatcher) NoticeChanged(*SystemNotice)        {}

// IsOpen reports whether a referral in this status is on the triage board:
// waiting to be triaged, being triaged, or waiting on the referrer.
func (s Status) IsOpen() bool {
	return s == StatusSubmitted || s == StatusInTriage || s == StatusMoreInfoNeeded
}

// enterStatus moves r into status to at now, and keeps what depends on it:
// when it entered, when triage stopped (the first move out of the triage
// clock after a submission), and when its next reminder is due.
func (r *Referral) enterStatus(to Status, now time.Time) {
	if r.Status.AwaitingTriage() && !to.AwaitingTriage() && r.TriagedAt == nil {
		r.TriagedAt = &now
	}
	if to == StatusSubmitted {
		r.TriagedAt = nil // a new submission starts a new clock
	}
	r.Status = to
	r.StatusChangedAt = now
	r.ReminderAt = nextReminderAfter(*r, now)
}

// ReminderReason is why a reminder was raised (SPEC §9).
type ReminderReason string

// The reminder reasons.
const (
	ReminderDueSoon       ReminderReason = "due_soon"
	ReminderBreached      ReminderReason = "breached"
	ReminderBreachedAgain ReminderReason = "breached_again"
	ReminderMoreInfo24h   ReminderReason = "more_info_24h"
	ReminderMoreInfo48h   ReminderReason = "more_info_48h"
)

// ForReferrer reports whether the reminder goes to the referring side (it
// is waiting on them) rather than the receiving team's coordinators.
func (r ReminderReason) ForReferrer() bool {
	return r == ReminderMoreInfo24h || r == ReminderMoreInfo48h
}

// ReminderBody is the body of a reminder event.
type ReminderBody struct {
	Reason ReminderReason `json:"reason"`
	// DueAt is the triage deadline the reminder is about, or, for the
	// referrer's reminders, when the request for more information was made.
	DueAt time.Time `json:"due_at"`
	// At is the moment the reminder was for (the point on the clock); a
	// scheduler that was down sends it late, never twice.
	At time.Time `json:"at"`
}

// reminderPoint is one moment on a referral's clock at which a reminder is
// due.
type reminderPoint struct {
	at     time.Time
	reason ReminderReason
	// about is the deadline (triage) or the request (more info).
	about time.Time
}

// The clock's constants: due soon at 75% of the window; breached at the
// deadline and again every hour until triaged; a referrer asked for more
// information reminded after 24 and 48 hours.
const (
	breachRepeat  = time.Hour
	moreInfoFirst = 24 * time.Hour
	moreInfoLast  = 48 * time.Hour
)

// pointAfter returns the first reminder point of r strictly after t.
func pointAfter(r Referral, t time.Time) (reminderPoint, bool) {
	switch {
	case r.Status.AwaitingTriage() && r.TriageDueAt != nil && r.SubmittedAt != nil:
		submitted, due := *r.SubmittedAt, *r.TriageDueAt
		soon := submitted.Add(due.Sub(submitted) * 3 / 4)
		if soon.After(t) && soon.Before(due) {
			return reminderPoint{soon, ReminderDueSoon, due}, true
		}
		if due.After(t) {
			return reminderPoint{due, ReminderBreached, due}, true
		}
		n := t.Sub(due)/breachRepeat + 1
		return reminderPoint{due.Add(n * breachRepeat), ReminderBreachedAgain, due}, true
	case r.Status == StatusMoreInfoNeeded:
		asked := r.StatusChangedAt
		for _, p := range []reminderPoint{{asked.Add(moreInfoFirst), ReminderMoreInfo24h, asked}, {asked.Add(moreInfoLast), ReminderMoreInfo48h, asked}} {
			if p.at.After(t) {
				return p, true
			}
		}
	}
	return reminderPoint{}, false
}

func nextReminderAfter(r Referral, t time.Time) *time.Time {
	p, ok := pointAfter(r, t)
	if !ok {
		return nil
	}
	at := p.at.UTC()
	return &at
}

// dueReminder returns the reminder r should raise at now, if any: of the
// points from r.ReminderAt up to now (those not yet raised), the one that
// still means something. A scheduler that was down raises one reminder,
// not a burst: a breach supersedes "due soon", and the latest hourly
// breach or the later more-information reminder the earlier ones.
func dueReminder(r Referral, now time.Time) (reminderPoint, bool) {
	if r.ReminderAt == nil || r.ReminderAt.After(now) {
		return reminderPoint{}, false
	}
	var pending []reminderPoint
	for t := r.ReminderAt.Add(-time.Nanosecond); ; {
		p, ok := pointAfter(r, t)
		if !ok || p.at.After(now) {
			break
		}
		if p.reason == ReminderBreachedAgain {
			// Hourly from here on: only the latest at or before now.
			p.at = p.about.Add(now.Sub(p.about) / breachRepeat * breachRepeat)
			pending = append(pending, p)
			break
		}
		pending = append(pending, p)
		t = p.at
	}
	if len(pending) == 0 {
		return reminderPoint{}, false
	}
	for _, p := range pending {
		if p.reason == ReminderBreached {
			return p, true // the first breach is always told
		}
	}
	return pending[len(pending)-1], true
}

// shortRef is the short reference people quote for a referral: the first
// eight characters of its id.
func shortRef(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// ShortRef is the short reference people quote for a referral.
func (r Referral) ShortRef() string { return shortRef(r.ID) }

// watcher returns the service's watcher, or one that ignores everything.
func (s *Service) watching() Watcher {
	if s.watch == nil {
		return NoWatcher{}
	}
	return s.watch
}

// afterCommit tells the watcher what a command on r changed: the board item
// (or its removal when the referral left the queue), the wallboard of the
// receiving organisation when the counts may have moved, and each new
// notification.
func (s *Service) afterCommit(ctx context.Context, before Status, r Referral, events []Event, ns []Notification) {
	w := s.watching()
	if r.Status.IsOpen() {
		w.BoardChanged(r.PathwayID, BoardUpdate{Referral: s.boardItem(ctx, r, nil)})
	} else if before.IsOpen() {
		w.BoardChanged(r.PathwayID, BoardUpdate{Removed: r.ID, HeadSeq: r.HeadSeq})
	}
	if before != r.Status || hasKind(events, EventReminder) {
		if wb, err := s.wallboard(ctx, r.ReceivingOrganisation); err == nil {
			w.WallboardChanged(r.ReceivingOrganisation, wb)
		}
	}
	for _, n := range ns {
		w.Notified(n.UserID, UserUpdate{Notification: &n})
	}
}

func hasKind(events []Event, k EventKind) bool {
	for _, e := range events {
		if e.Kind == k {
			return true
		}
	}
	return false
}
