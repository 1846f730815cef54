package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// reminderBatch is how many due referrals one pass of the scheduler takes
// from the store at a time.
const reminderBatch = 100

// RaiseDueReminders raises every reminder due at the service's clock (SPEC
// §9): each in a transaction of its own that appends the reminder event,
// moves the referral's next reminder on, stores the notifications and the
// audit entry, and records the reminder's own key, so a reminder is raised
// once however many schedulers run and however often they restart. It
// returns how many it raised.
func (s *Service) RaiseDueReminders(ctx context.Context) (int, error) {
	raised := 0
	for {
		ids, err := s.store.DueReminders(ctx, s.clock.Now(), reminderBatch)
		if err != nil {
			return raised, fmt.Errorf("read due reminders: %w", err)
		}
		progressed := false
		var first error // one referral that fails holds up no other
		for _, id := range ids {
			ok, moved, err := s.raiseReminder(ctx, id)
			if err != nil && first == nil {
				first = err
			}
			if ok {
				raised++
			}
			progressed = progressed || moved
		}
		if first != nil || len(ids) < reminderBatch || !progressed {
			return raised, first
		}
	}
}

// raiseReminder raises the reminder due on one referral, if one still is
// (another scheduler may have raised it), and moves its next reminder on.
// It reports whether it raised one and whether it moved the referral on.
func (s *Service) raiseReminder(ctx context.Context, id string) (raised, moved bool, err error) {
	var (
		event  Event
		after  Referral
		before Status
		notes  []Notification
	)
	// Bounded as a group is: a referral's stamp commits within
	// groupTimeout (ChangeSettle).
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	err = s.store.InTx(ctx, func(tx Tx) error {
		r, err := tx.LockReferral(ctx, id)
		if err != nil {
			return fmt.Errorf("lock referral %s: %w", id, err)
		}
		now := s.clock.Now().Truncate(time.Microsecond)
		if r.ReminderAt == nil || r.ReminderAt.After(now) {
			return nil // raised meanwhile, or its state moved on
		}
		moved = true
		before = r.Status
		p, ok := dueReminder(r, now)
		r.ReminderAt = nextReminderAfter(r, now)
		if !ok {
			if err := tx.UpdateReferral(ctx, r); err != nil {
				return fmt.Errorf("reschedule reminder of referral %s: %w", id, err)
			}
			return nil
		}
		event = s.nextEvent(&r, System.User, EventReminder, ReminderBody{Reason: p.reason, DueAt: p.about.UTC(), At: p.at.UTC()})
		if err := appendEvents(ctx, tx, &r, event); err != nil {
			return err
		}
		if notes, err = s.notify(ctx, tx, r, []Event{event}); err != nil {
			return err
		}
		// The reminder's own key: the point on the clock it is for.
		key := fmt.Sprintf("reminder-%s-%s-%d", r.ID, p.reason, p.at.UnixMicro())
		err = tx.RecordCommand(ctx, CommandRecord{ActorID: System.User.ID, Ref: key, Kind: "referral.reminder", ReferralID: r.ID,
			Result: mustJSON(commandResult{ReferralID: r.ID, Seq: event.Seq}), At: now})
		if err != nil {
			return fmt.Errorf("record reminder %s: %w", key, err)
		}
		after, raised = r, true
		return s.appendAudit(ctx, tx, s.entry(System, ActionExecute, "referral.reminder", &r, OutcomeSuccess,
			fmt.Sprintf("reason=%s seq=%d notified=%d", p.reason, event.Seq, len(notes))))
	})
	if errors.Is(err, ErrDuplicate) {
		return false, true, nil // raised by another scheduler after all
	}
	if err != nil || !raised {
		return false, moved, err
	}
	if s.pub != nil {
		s.pub.Publish(ctx, event)
	}
	s.afterCommit(ctx, before, after, []Event{event}, notes)
	return true, true, nil
}

// Scheduler runs the triage clocks: on one node at a time (the store's
// SchedulerLock), it raises the reminders that fall due. Another node's
// scheduler takes over within a tick or two of the holder's death.
type Scheduler struct {
	svc  *Service
	lock SchedulerLock
	// every is how often it tries the lock and looks for due reminders.
	every time.Duration
	// onError is told of failures, which are retried on the next tick.
	onError func(error)
	// onLead is told when this node starts or stops running the clocks.
	onLead func(bool)
}

// DefaultSchedulerInterval is how often a scheduler looks: a dead node's
// clocks are taken over within two intervals plus the time its connection
// takes to close.
const DefaultSchedulerInterval = 5 * time.Second

// NewScheduler returns a scheduler for svc's store. every <= 0 takes
// DefaultSchedulerInterval; onError and onLead may be nil.
func NewScheduler(svc *Service, every time.Duration, onError func(error), onLead func(bool)) *Scheduler {
	if every <= 0 {
		every = DefaultSchedulerInterval
	}
	if onError == nil {
		onError = func(error) {}
	}
	if onLead == nil {
		onLead = func(bool) {}
	}
	return &Scheduler{svc: svc, lock: svc.store, every: every, onError: onError, onLead: onLead}
}

// Run runs the scheduler until ctx ends, then gives the lock up.
func (sc *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(sc.every)
	defer t.Stop()
	leading := false
	defer func() {
		if leading {
			sc.onLead(false)
		}
		if err := sc.lock.ReleaseSchedulerLock(context.WithoutCancel(ctx)); err != nil {
			sc.onError(fmt.Errorf("release scheduler lock: %w", err))
		}
	}()
	for {
		held, err := sc.lock.HoldSchedulerLock(ctx)
		if err != nil && ctx.Err() == nil {
			sc.onError(fmt.Errorf("hold scheduler lock: %w", err))
		}
		if held != leading {
			leading = held
			sc.onLead(held)
		}
		if held {
			if _, err := sc.svc.RaiseDueReminders(ctx); err != nil && ctx.Err() == nil {
				sc.onError(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
