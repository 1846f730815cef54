package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"patientpass/rooms"
)

var settingTests = []subtest{
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.Setting(t.Context(), "session_keys")
		wantNotFound(t, "read missing setting", err)
	}},
	{"first_writer_wins", func(t *testing.T, s rooms.Store) {
		got, err := s.SetSettingIfAbsent(t.Context(), "session_keys", "first")
		if err != nil || got != "first" {
			t.Fatalf("first write: %q, %v; want %q", got, err, "first")
		}
		got, err = s.SetSettingIfAbsent(t.Context(), "session_keys", "second")
		if err != nil || got != "first" {
			t.Errorf("second write: %q, %v; want the first value", got, err)
		}
		got, err = s.Setting(t.Context(), "session_keys")
		if err != nil || got != "first" {
			t.Errorf("read: %q, %v; want the first value", got, err)
		}
		got, err = s.SetSettingIfAbsent(t.Context(), "other", "x")
		if err != nil || got != "x" {
			t.Errorf("another key: %q, %v; want %q", got, err, "x")
		}
	}},
	{"concurrent_writers_agree_on_one_value", func(t *testing.T, s rooms.Store) {
		const writers = 8
		results := make([]string, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.SetSettingIfAbsent(t.Context(), "key", fmt.Sprintf("value-%d", i))
			})
		}
		close(start)
		wg.Wait()
		stored, err := s.Setting(t.Context(), "key")
		if err != nil {
			t.Fatalf("read setting: %v", err)
		}
		for i := range writers {
			if errs[i] != nil {
				t.Errorf("writer %d: %v", i, errs[i])
			} else if results[i] != stored {
				t.Errorf("writer %d was told %q, but %q is stored", i, results[i], stored)
			}
		}
	}},
}

var transactionTests = []subtest{
	{"error_rolls_back_every_write", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		ctx := t.Context()
		err := s.InTx(ctx, func(tx rooms.Tx) error {
			r := f.referral("r-1", at(0))
			r.Status, r.HeadSeq = rooms.StatusSubmitted, 1
			for _, step := range []func() error{
				func() error {
					return tx.PutOrganisation(ctx, rooms.Organisation{ODS: "REP", Name: "Liverpool Women's"})
				},
				func() error { return tx.PutOrganisation(ctx, rooms.Organisation{ODS: "RET", Name: "Renamed"}) },
				func() error {
					return tx.CreateUser(ctx, testUser("u-new", "new@demo.test", "RET", at(0), rooms.RoleAdmin))
				},
				func() error { return tx.PutPathway(ctx, rooms.MSCC("REP")) },
				func() error { return tx.CreateReferral(ctx, f.referral("r-2", at(0))) },
				func() error { return tx.UpdateReferral(ctx, r) },
				func() error { return tx.AppendEvent(ctx, f.event("r-1", 1)) },
				func() error {
					return tx.PutPlanSection(ctx, "r-1", rooms.PlanSection{Name: "imaging", Revision: 1, Text: "x", UpdatedAt: at(0)})
				},
				func() error {
					return tx.AddParticipant(ctx, "r-1", rooms.Participant{UserID: f.colleague.ID, AddedBy: f.referrer.ID, AddedAt: at(0)})
				},
				func() error { return tx.SetReadMarker(ctx, "r-1", f.referrer.ID, 1) },
				func() error {
					return tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref", Kind: "message",
						Result: json.RawMessage(`{}`), At: at(0)})
				},
				func() error {
					e := auditEntry(f.referrer.ID, "login", "", rooms.OutcomeSuccess, at(0))
					e.Chain = 0
					return tx.AppendAudit(ctx, e)
				},
			} {
				if err := step(); err != nil {
					return err
				}
			}
			// Reads through the transaction see its own writes.
			if got, err := tx.Referral(ctx, "r-1"); err != nil || got.HeadSeq != 1 || len(got.Participants) != 2 || len(got.Plan.Sections) != 1 {
				t.Errorf("transaction does not see its own writes: %+v, %v", got, err)
			}
			if _, err := tx.User(ctx, "u-new"); err != nil {
				t.Errorf("transaction does not see the user it created: %v", err)
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("InTx returned %v, want the function's error as it is", err)
		}

		if o, err := s.Organisation(ctx, "RET"); err != nil || o.Name != "The Walton Centre" {
			t.Errorf("organisation RET after rollback: %+v, %v", o, err)
		}
		_, err = s.Organisation(ctx, "REP")
		wantNotFound(t, "organisation created in a rolled-back transaction", err)
		_, err = s.User(ctx, "u-new")
		wantNotFound(t, "user created in a rolled-back transaction", err)
		if p, err := s.Pathway(ctx, "mscc"); err != nil || p.ReceivingOrganisation != "RET" {
			t.Errorf("pathway after rollback: %+v, %v", p.ReceivingOrganisation, err)
		}
		_, err = s.Referral(ctx, "r-2")
		wantNotFound(t, "referral created in a rolled-back transaction", err)
		got, err := s.Referral(ctx, "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		checkReferral(t, "referral after rollback", got, f.referral("r-1", at(0)))
		if evs, err := s.Events(ctx, "r-1", 0, 0); err != nil || len(evs) != 0 {
			t.Errorf("events after rollback: %+v, %v", evs, err)
		}
		if m, err := s.ReadMarker(ctx, "r-1", f.referrer.ID); err != nil || m != 0 {
			t.Errorf("read marker after rollback: %d, %v", m, err)
		}
		_, err = s.Command(ctx, f.referrer.ID, "ref")
		wantNotFound(t, "command claimed in a rolled-back transaction", err)
		heads, err := s.AuditHeads(ctx)
		if err != nil {
			t.Fatalf("read heads: %v", err)
		}
		checkHeads(t, heads, map[int]rooms.AuditHead{})
		if log, err := s.AuditLog(ctx, rooms.AuditFilter{}); err != nil || len(log) != 0 {
			t.Errorf("audit log after rollback: %+v, %v", log, err)
		}
	}},
	{"reads_through_a_transaction", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.AppendEvent(ctx, f.event("r-1", 1)); err != nil {
				return err
			}
			if err := tx.SetReadMarker(ctx, "r-1", f.referrer.ID, 1); err != nil {
				return err
			}
			checks := []struct {
				what string
				err  func() error
			}{
				{"organisation", func() error { _, err := tx.Organisation(ctx, "RET"); return err }},
				{"organisations", func() error { return wantLen(tx.Organisations(ctx))(4) }},
				{"user", func() error { _, err := tx.User(ctx, f.referrer.ID); return err }},
				{"user by email", func() error { _, err := tx.UserByEmail(ctx, f.referrer.Email); return err }},
				{"users", func() error { return wantLen(tx.Users(ctx, rooms.UserFilter{Organisation: "RJR"}))(2) }},
				{"pathway", func() error { _, err := tx.Pathway(ctx, "mscc"); return err }},
				{"pathways", func() error { return wantLen(tx.Pathways(ctx))(2) }},
				{"referral", func() error { _, err := tx.Referral(ctx, "r-1"); return err }},
				{"referrals", func() error { return wantLen(tx.Referrals(ctx, rooms.ReferralFilter{}))(1) }},
				{"events", func() error { return wantLen(tx.Events(ctx, "r-1", 0, 0))(1) }},
				{"event", func() error { _, err := tx.Event(ctx, "r-1", 1); return err }},
				{"read marker", func() error {
					if m, err := tx.ReadMarker(ctx, "r-1", f.referrer.ID); err != nil || m != 1 {
						return fmt.Errorf("marker %d, %v; want 1", m, err)
					}
					return nil
				}},
			}
			for _, c := range checks {
				if err := c.err(); err != nil {
					t.Errorf("%s through a transaction: %v", c.what, err)
				}
			}
			_, err := tx.Command(ctx, f.referrer.ID, "nope")
			wantNotFound(t, "missing command through a transaction", err)
			return nil
		})
	}},
	{"ping_answers", func(t *testing.T, s rooms.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("ping: %v", err)
		}
	}},
}

// wantLen adapts a list call to a check of its length.
func wantLen[T any](list []T, err error) func(n int) error {
	return func(n int) error {
		if err != nil {
			return err
		}
		if len(list) != n {
			return fmt.Errorf("%d results, want %d", len(list), n)
		}
		return nil
	}
}

var concurrencyTests = []subtest{
	{"concurrent_appends_to_one_referral_have_no_gaps", concurrentAppends},
	{"concurrent_repeats_of_one_ref_run_once", concurrentRefs},
	{"concurrent_audit_appends_keep_the_chain", concurrentAudit},
	{"concurrent_point_reads_each_get_their_own_row", concurrentPointReads},
}

// concurrentPointReads reads sessions and users, present and missing, from
// many callers at once (a store may share one query among them): each gets
// exactly its own row, or not found.
func concurrentPointReads(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	users := []rooms.User{f.referrer, f.colleague, f.specialist, f.outsider}
	for i, u := range users {
		createSessions(t, s, newSession(fmt.Sprint("s-", i), u.ID, at(0), at(time.Minute)))
	}
	var wg sync.WaitGroup
	for c := range 200 {
		wg.Go(func() {
			ctx := t.Context()
			i := c % (len(users) + 1) // the last is missing
			x, err := s.SessionByTokenHash(ctx, fmt.Sprint("th-s-", i))
			switch {
			case i == len(users):
				if !errors.Is(err, rooms.ErrNotFound) {
					t.Errorf("missing session: %v; want not found", err)
				}
			case err != nil || x.ID != fmt.Sprint("s-", i) || x.UserID != users[i].ID:
				t.Errorf("session s-%d: got %s of %s, %v", i, x.ID, x.UserID, err)
			}
			id := "u-missing"
			if i < len(users) {
				id = users[i].ID
			}
			u, err := s.User(ctx, id)
			switch {
			case i == len(users):
				if !errors.Is(err, rooms.ErrNotFound) {
					t.Errorf("missing user: %v; want not found", err)
				}
			case err != nil || u.ID != id || u.Email != users[i].Email || !slices.Equal(u.Roles, users[i].Roles):
				t.Errorf("user %s: got %s %s %v, %v", id, u.ID, u.Email, u.Roles, err)
			}
		})
	}
	wg.Wait()
}

// appendMessage appends the next event to referral id the way the service
// does: lock, take head+1, append, move the head.
func appendMessage(ctx context.Context, tx rooms.Tx, id string, author rooms.Author, body string) (int64, error) {
	r, err := tx.LockReferral(ctx, id)
	if err != nil {
		return 0, err
	}
	seq := r.HeadSeq + 1
	b, _ := json.Marshal(rooms.MessageBody{Body: body})
	e := rooms.Event{ReferralID: id, Seq: seq, Kind: rooms.EventMessage, Author: author, At: at(time.Duration(seq) * time.Millisecond), Body: b}
	if err := tx.AppendEvent(ctx, e); err != nil {
		return 0, err
	}
	r.HeadSeq = seq
	r.UpdatedAt = e.At
	if err := tx.UpdateReferral(ctx, r); err != nil {
		return 0, err
	}
	return seq, nil
}

func concurrentAppends(t *testing.T, s rooms.Store) {
	const writers, each = 16, 25
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0)))
	author := rooms.AuthorOf(f.referrer)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				err := s.InTx(t.Context(), func(tx rooms.Tx) error {
					_, err := appendMessage(t.Context(), tx, "r-1", author, fmt.Sprintf("w%d-%d", w, i))
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("lost write: %v", err)
	}
	events, err := s.Events(t.Context(), "r-1", 0, 0)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	if len(events) != writers*each {
		t.Errorf("%d events stored, want %d", len(events), writers*each)
	}
	bodies := map[string]bool{}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: a gap or a duplicate", i+1, e.Seq)
		}
		bodies[string(e.Body)] = true
	}
	if len(bodies) != len(events) {
		t.Errorf("%d distinct bodies among %d events: an append was stored twice", len(bodies), len(events))
	}
	r, err := s.Referral(t.Context(), "r-1")
	if err != nil {
		t.Fatalf("get referral: %v", err)
	}
	if r.HeadSeq != writers*each {
		t.Errorf("head seq %d, want %d", r.HeadSeq, writers*each)
	}
}

// concurrentRefs races callers recording one ref, each after appending to
// a referral of its own, so nothing but the record serialises them: one
// commits, every other finds the ref taken and leaves nothing behind.
func concurrentRefs(t *testing.T, s rooms.Store) {
	const callers = 12
	f := newFixture(t, s)
	for i := range callers {
		f.createReferral(t, f.referral(fmt.Sprintf("r-%d", i), at(0)))
	}
	author := rooms.AuthorOf(f.referrer)
	type outcome struct {
		result json.RawMessage
		err    error
	}
	outcomes := make([]outcome, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("r-%d", i)
			var o outcome
			o.err = s.InTx(t.Context(), func(tx rooms.Tx) error {
				ctx := t.Context()
				seq, err := appendMessage(ctx, tx, id, author, fmt.Sprintf("caller %d", i))
				if err != nil {
					return err
				}
				o.result = json.RawMessage(fmt.Sprintf(`{"referral_id":%q,"seq":%d}`, id, seq))
				return tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref-once", Kind: "message",
					ReferralID: id, Result: o.result, At: at(time.Duration(i) * time.Second)})
			})
			outcomes[i] = o
		})
	}
	close(start)
	wg.Wait()

	var winner *outcome
	for i := range outcomes {
		o := &outcomes[i]
		switch {
		case errors.Is(o.err, rooms.ErrDuplicate):
		case o.err != nil:
			t.Errorf("caller %d: %v", i, o.err)
		case winner != nil:
			t.Errorf("caller %d recorded a ref already recorded", i)
		default:
			winner = o
		}
	}
	if winner == nil {
		t.Fatalf("no caller recorded the ref")
	}
	got, err := s.Command(t.Context(), f.referrer.ID, "ref-once")
	if err != nil {
		t.Fatalf("read command: %v", err)
	}
	if !sameJSON(got.Result, winner.result) {
		t.Errorf("recorded result %s, want the winner's %s", got.Result, winner.result)
	}
	var stored int
	for i := range callers {
		events, err := s.Events(t.Context(), fmt.Sprintf("r-%d", i), 0, 0)
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		stored += len(events)
	}
	if stored != 1 {
		t.Errorf("%d events stored for one ref, want 1", stored)
	}
}

func concurrentAudit(t *testing.T, s rooms.Store) {
	const writers, each = 8, 10
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				err := s.InTx(t.Context(), func(tx rooms.Tx) error {
					e := auditEntry(fmt.Sprintf("u-%d", w), "referral.view", "r-1", rooms.OutcomeSuccess, at(time.Duration(i)*time.Second))
					e.Chain = 7
					return tx.AppendAudit(t.Context(), e)
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d entry %d: %w", w, i, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("lost audit entry: %v", err)
	}
	checked, brk, err := rooms.VerifyAudit(t.Context(), s)
	if err != nil || brk != nil || checked != writers*each {
		t.Errorf("verify: checked %d, break %v, err %v; want %d entries intact", checked, brk, err, writers*each)
	}
}
