package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"patientpass/rooms"
)

// groupTests are the contract of InTxGroup: one transaction whose members
// keep their own outcomes.
var groupTests = []subtest{
	{"members_keep_their_outcomes", groupOutcomes},
	{"refused_member_is_undone_alone", groupRefusedAfterQueueing},
	{"failure_after_a_write_is_alone_or_nothing", groupFailureAfterWrite},
	{"store_failure_in_a_member_is_alone_or_nothing", groupStoreFailure},
	{"lock_of_a_missing_referral", groupMissingReferral},
	{"concurrent_groups_keep_order_and_chains", groupConcurrent},
}

// runGroup runs fns as one group with lock and fails the test when the
// group as a whole fails.
func runGroup(t *testing.T, s rooms.Store, lock []string, fns ...func(ctx context.Context, tx rooms.Tx) error) []error {
	t.Helper()
	errs, err := tryGroup(t, s, lock, fns...)
	if err != nil {
		t.Fatalf("group failed as a whole: %v", err)
	}
	return errs
}

func tryGroup(t *testing.T, s rooms.Store, lock []string, fns ...func(ctx context.Context, tx rooms.Tx) error) ([]error, error) {
	t.Helper()
	ctx := t.Context()
	members := make([]func(rooms.Tx) error, len(fns))
	for i, fn := range fns {
		members[i] = func(tx rooms.Tx) error { return fn(ctx, tx) }
	}
	errs, err := s.InTxGroup(ctx, lock, members)
	if err == nil && len(errs) != len(fns) {
		t.Fatalf("group returned %d outcomes for %d members", len(errs), len(fns))
	}
	return errs, err
}

// audited appends an audit entry about referral id, as a command does last.
func audited(ctx context.Context, tx rooms.Tx, id, event string) error {
	e := auditEntry("u-referrer", event, id, rooms.OutcomeSuccess, at(time.Second))
	e.Chain = rooms.AuditChainFor(id)
	return tx.AppendAudit(ctx, e)
}

// wantHead checks the stored events of referral id are 1..n, gapless, and
// its head is n.
func wantHead(t *testing.T, s rooms.Store, id string, n int64) {
	t.Helper()
	events, err := s.Events(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatalf("read events of %s: %v", id, err)
	}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("referral %s: event %d has seq %d, a gap or a duplicate", id, i+1, e.Seq)
		}
	}
	r, err := s.Referral(t.Context(), id)
	if err != nil {
		t.Fatalf("read referral %s: %v", id, err)
	}
	if int64(len(events)) != n || r.HeadSeq != n {
		t.Errorf("referral %s: %d events, head %d; want %d", id, len(events), r.HeadSeq, n)
	}
}

// wantAuditEvents checks the trail holds exactly events (in any order) and
// verifies.
func wantAuditEvents(t *testing.T, s rooms.Store, events ...string) {
	t.Helper()
	log, err := s.AuditLog(t.Context(), rooms.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("read the audit log: %v", err)
	}
	got := map[string]int{}
	for _, e := range log {
		got[e.Event]++
	}
	want := map[string]int{}
	for _, e := range events {
		want[e]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit events %v, want %v", got, want)
	}
	checked, brk, err := rooms.VerifyAudit(t.Context(), s)
	if err != nil || brk != nil || checked != int64(len(events)) {
		t.Errorf("verify: checked %d, break %v, err %v; want %d entries intact", checked, brk, err, len(events))
	}
}

// A member sees what the members before it wrote; a member refused on what
// it read fails alone, and the others commit.
func groupOutcomes(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0)))
	f.createReferral(t, f.referral("r-2", at(0)))
	author := rooms.AuthorOf(f.referrer)
	message := func(id string) func(ctx context.Context, tx rooms.Tx) error {
		return func(ctx context.Context, tx rooms.Tx) error {
			if _, err := appendMessage(ctx, tx, id, author, "m"); err != nil {
				return err
			}
			return audited(ctx, tx, id, "referral.message")
		}
	}
	var seen int64 = -1
	errs := runGroup(t, s, []string{"r-1", "r-2", "r-1", "r-1"},
		message("r-1"),
		func(ctx context.Context, tx rooms.Tx) error {
			r, err := tx.LockReferral(ctx, "r-1")
			if err != nil {
				return err
			}
			seen = r.HeadSeq
			return errBoom // refused on what it read
		},
		message("r-2"),
		message("r-1"),
	)
	if seen != 1 {
		t.Errorf("the second member saw head %d of r-1; want 1, the first member's write", seen)
	}
	want := []error{nil, errBoom, nil, nil}
	for i := range want {
		if !errors.Is(errs[i], want[i]) || (want[i] == nil && errs[i] != nil) {
			t.Errorf("member %d: %v, want %v", i, errs[i], want[i])
		}
	}
	wantHead(t, s, "r-1", 2)
	wantHead(t, s, "r-2", 1)
	wantAuditEvents(t, s, "referral.message", "referral.message", "referral.message")
}

// A member refused after it queued its writes (event, referral, command,
// notifications, audit) leaves none of them.
func groupRefusedAfterQueueing(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0)))
	author := rooms.AuthorOf(f.referrer)
	errs := runGroup(t, s, []string{"r-1", "r-1"},
		func(ctx context.Context, tx rooms.Tx) error {
			if _, err := appendMessage(ctx, tx, "r-1", author, "undone"); err != nil {
				return err
			}
			if err := tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref-undone", Kind: "referral.message",
				ReferralID: "r-1", Result: []byte(`{}`), At: at(0)}); err != nil {
				return err
			}
			if err := tx.AddNotifications(ctx, []rooms.Notification{{ID: "n-undone", UserID: f.specialist.ID, Kind: "message",
				ReferralID: "r-1", Seq: 1, At: at(0), Title: "x"}}); err != nil {
				return err
			}
			if err := audited(ctx, tx, "r-1", "referral.undone"); err != nil {
				return err
			}
			return errBoom
		},
		func(ctx context.Context, tx rooms.Tx) error {
			seq, err := appendMessage(ctx, tx, "r-1", author, "kept")
			if err == nil && seq != 1 {
				err = fmt.Errorf("appended at seq %d after an undone member; want 1", seq)
			}
			if err != nil {
				return err
			}
			return audited(ctx, tx, "r-1", "referral.message")
		},
	)
	if !errors.Is(errs[0], errBoom) || errs[1] != nil {
		t.Fatalf("outcomes %v; want the first refused and the second committed", errs)
	}
	wantHead(t, s, "r-1", 1)
	events, _ := s.Events(t.Context(), "r-1", 0, 0)
	if len(events) == 1 && string(events[0].Body) != `{"body":"kept"}` && string(events[0].Body) != `{"body": "kept"}` {
		t.Errorf("stored event %s; want the second member's", events[0].Body)
	}
	if _, err := s.Command(t.Context(), f.referrer.ID, "ref-undone"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("command of the refused member: %v; want not found", err)
	}
	if n, err := s.UnreadNotifications(t.Context(), f.specialist.ID); err != nil || n != 0 {
		t.Errorf("notifications of the refused member: %d, %v; want none", n, err)
	}
	wantAuditEvents(t, s, "referral.message")
}

// A member that fails after a write reached the store is either undone
// alone (the others commit) or fails the group (nothing commits): never
// half of it.
func groupFailureAfterWrite(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0)))
	f.createReferral(t, f.referral("r-2", at(0)))
	author := rooms.AuthorOf(f.referrer)
	errs, err := tryGroup(t, s, []string{"r-1", "r-2"},
		func(ctx context.Context, tx rooms.Tx) error {
			_, err := appendMessage(ctx, tx, "r-1", author, "kept")
			return err
		},
		func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.SetReadMarker(ctx, "r-2", f.referrer.ID, 5); err != nil {
				return err
			}
			if _, err := tx.ReadMarker(ctx, "r-2", f.referrer.ID); err != nil {
				return err
			}
			if _, err := appendMessage(ctx, tx, "r-2", author, "undone"); err != nil {
				return err
			}
			return errBoom
		},
	)
	wantAloneOrNothing(t, s, errs, err)
}

// A write the store refuses (a taken seq) inside a member: the member fails
// alone or the group fails, never half of it.
func groupStoreFailure(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0)))
	f.createReferral(t, f.referral("r-2", at(0)))
	author := rooms.AuthorOf(f.referrer)
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.AppendEvent(ctx, f.event("r-2", 1)) })
	errs, err := tryGroup(t, s, []string{"r-1", "r-2"},
		func(ctx context.Context, tx rooms.Tx) error {
			_, err := appendMessage(ctx, tx, "r-1", author, "kept")
			return err
		},
		func(ctx context.Context, tx rooms.Tx) error {
			// r-2's head is 0 but seq 1 is taken: the store refuses it,
			// when it is sent.
			if err := tx.AppendEvent(ctx, f.event("r-2", 1)); err != nil {
				return err
			}
			_, err := tx.Events(ctx, "r-2", 0, 0)
			return err
		},
	)
	if err == nil && !errors.Is(errs[1], rooms.ErrDuplicate) {
		t.Errorf("the member with a taken seq: %v; want a duplicate", errs[1])
	}
	if err == nil && errs[0] != nil {
		t.Errorf("the other member: %v; want it committed", errs[0])
	}
	if err != nil {
		wantHead(t, s, "r-1", 0)
		return
	}
	wantHead(t, s, "r-1", 1)
}

// wantAloneOrNothing checks the outcome of a group whose first member
// appends to r-1 and whose second fails after writing to r-2.
func wantAloneOrNothing(t *testing.T, s rooms.Store, errs []error, err error) {
	t.Helper()
	marker, merr := s.ReadMarker(t.Context(), "r-2", "u-referrer")
	r2, rerr := s.Referral(t.Context(), "r-2")
	if merr != nil || rerr != nil {
		t.Fatalf("read r-2: %v, %v", merr, rerr)
	}
	if marker != 0 || r2.HeadSeq != 0 {
		t.Errorf("the failed member left marker %d, head %d on r-2; want nothing", marker, r2.HeadSeq)
	}
	if err != nil {
		wantHead(t, s, "r-1", 0) // the group failed: nothing of it
		return
	}
	if errs[0] != nil || !errors.Is(errs[1], errBoom) {
		t.Errorf("outcomes %v; want the first committed and the second refused", errs)
	}
	wantHead(t, s, "r-1", 1)
}

// A referral to lock that does not exist is not found by the member that
// locks it, alone.
func groupMissingReferral(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0)))
	author := rooms.AuthorOf(f.referrer)
	errs := runGroup(t, s, []string{"r-ghost", "r-1"},
		func(ctx context.Context, tx rooms.Tx) error {
			_, err := tx.LockReferral(ctx, "r-ghost")
			return err
		},
		func(ctx context.Context, tx rooms.Tx) error {
			_, err := appendMessage(ctx, tx, "r-1", author, "m")
			return err
		},
	)
	wantNotFound(t, "lock a missing referral in a group", errs[0])
	if errs[1] != nil {
		t.Errorf("the other member: %v; want it committed", errs[1])
	}
	wantHead(t, s, "r-1", 1)
}

// Groups running at once, over the same referrals and audit chains in
// different orders, neither deadlock nor lose, reorder or duplicate a
// write, and leave every chain intact.
func groupConcurrent(t *testing.T, s rooms.Store) {
	const groupers, groups, size = 6, 8, 5
	f := newFixture(t, s)
	ids := []string{"r-1", "r-2", "r-3", "r-4"}
	for _, id := range ids {
		f.createReferral(t, f.referral(id, at(0)))
	}
	author := rooms.AuthorOf(f.referrer)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		appends = map[string]int64{}
		start   = make(chan struct{})
	)
	for w := range groupers {
		wg.Go(func() {
			<-start
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range groups {
				var lock []string
				var fns []func(ctx context.Context, tx rooms.Tx) error
				picked := make([]string, size)
				for i := range size {
					id := ids[rng.IntN(len(ids))]
					picked[i] = id
					lock = append(lock, id)
					fns = append(fns, func(ctx context.Context, tx rooms.Tx) error {
						if _, err := appendMessage(ctx, tx, id, author, "m"); err != nil {
							return err
						}
						return audited(ctx, tx, id, "referral.message")
					})
				}
				errs, err := tryGroup(t, s, lock, fns...)
				if err != nil {
					t.Errorf("grouper %d: group failed: %v", w, err)
					return
				}
				mu.Lock()
				for i, e := range errs {
					if e != nil {
						t.Errorf("grouper %d: member failed: %v", w, e)
						continue
					}
					appends[picked[i]]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	var total int
	for _, id := range ids {
		wantHead(t, s, id, appends[id])
		total += int(appends[id])
	}
	checked, brk, err := rooms.VerifyAudit(t.Context(), s)
	if err != nil || brk != nil || checked != int64(total) {
		t.Errorf("verify: checked %d, break %v, err %v; want %d entries intact", checked, brk, err, total)
	}
}
