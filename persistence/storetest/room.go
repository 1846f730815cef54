package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"patientpass/rooms"
)

var eventTests = []subtest{
	{"append_then_read_in_seq_order", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		f.createReferral(t, f.referral("r-2", at(0)))
		var want []rooms.Event
		for seq := int64(1); seq <= 5; seq++ {
			want = append(want, f.event("r-1", seq))
		}
		want[0].Kind = rooms.EventCreated
		want[0].Body = json.RawMessage(`{"pathway":"mscc","priority":"urgent","status":"draft"}`)
		want[2].Kind = rooms.EventTransition
		want[2].Author = rooms.AuthorOf(f.specialist)
		want[2].Body = json.RawMessage(`{"from":"submitted","to":"in_triage","outcome":{"bed_type":"spinal","n":2}}`)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			// Out of order, so that insertion order cannot pass for seq order.
			for _, i := range []int{0, 1, 3, 2, 4} {
				if err := tx.AppendEvent(ctx, want[i]); err != nil {
					return err
				}
			}
			return tx.AppendEvent(ctx, f.event("r-2", 1))
		})

		got, err := s.Events(t.Context(), "r-1", 0, 0)
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		checkEvents(t, "all events", got, want)

		got, err = s.Events(t.Context(), "r-1", 2, 2)
		if err != nil {
			t.Fatalf("read events after 2: %v", err)
		}
		checkEvents(t, "events after 2, limit 2", got, want[2:4])

		got, err = s.Events(t.Context(), "r-1", 3, -1)
		if err != nil {
			t.Fatalf("read events after 3: %v", err)
		}
		checkEvents(t, "events after 3, no limit", got, want[3:])

		got, err = s.Events(t.Context(), "r-1", 5, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("events after the head: %+v, %v; want none", got, err)
		}
	}},
	{"one_event_by_seq", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		e1, e2 := f.event("r-1", 1), f.event("r-1", 2)
		e2.Body = json.RawMessage(`{"section":"imaging","revision":3,"text":"MRI – “whole spine”\nline two"}`)
		e2.Kind = rooms.EventPlanEdit
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.AppendEvent(ctx, e1); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, e2)
		})
		got, err := s.Event(t.Context(), "r-1", 2)
		if err != nil {
			t.Fatalf("read event 2: %v", err)
		}
		checkEvent(t, "event 2", got, e2)
		_, err = s.Event(t.Context(), "r-1", 3)
		wantNotFound(t, "read event past the head", err)
		_, err = s.Event(t.Context(), "r-missing", 1)
		wantNotFound(t, "read event of a missing referral", err)
	}},
	{"taken_seq_is_duplicate", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		f.createReferral(t, f.referral("r-2", at(0)))
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.AppendEvent(ctx, f.event("r-1", 1)) })
		again := f.event("r-1", 1)
		again.Body = json.RawMessage(`{"body":"second writer"}`)
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.AppendEvent(t.Context(), again) })
		wantDuplicate(t, "append at a taken seq", err)
		got, err := s.Event(t.Context(), "r-1", 1)
		if err != nil {
			t.Fatalf("read event 1: %v", err)
		}
		checkEvent(t, "first event kept", got, f.event("r-1", 1))
		// The same seq in another referral is a different event.
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.AppendEvent(ctx, f.event("r-2", 1)) })
	}},
}

func checkEvents(t *testing.T, what string, got, want []rooms.Event) {
	t.Helper()
	if len(got) != len(want) {
		var seqs []int64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		t.Errorf("%s: got %d events (seqs %v), want %d", what, len(got), seqs, len(want))
		return
	}
	for i := range got {
		checkEvent(t, what, got[i], want[i])
	}
}

var planTests = []subtest{
	{"sections_are_stored_replaced_and_sorted_by_name", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		f.createReferral(t, f.referral("r-2", at(0)))
		steroids1 := rooms.PlanSection{Name: "steroids", Revision: 1, Text: "dexamethasone 16 mg", UpdatedBy: f.specialist.ID, UpdatedAt: at(time.Minute)}
		imaging := rooms.PlanSection{Name: "imaging", Revision: 1, Text: "MRI whole spine", UpdatedBy: f.referrer.ID, UpdatedAt: at(2 * time.Minute)}
		transfer := rooms.PlanSection{Name: "transfer", Revision: 1, Text: "flat, log roll", UpdatedBy: f.specialist.ID, UpdatedAt: at(3 * time.Minute)}
		steroids2 := rooms.PlanSection{Name: "steroids", Revision: 2, Text: "dexamethasone 8 mg bd", UpdatedBy: f.colleague.ID, UpdatedAt: at(4 * time.Minute)}
		for _, sec := range []rooms.PlanSection{steroids1, transfer, imaging, steroids2} {
			inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.PutPlanSection(ctx, "r-1", sec) })
		}
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		want := f.referral("r-1", at(0))
		want.Plan.Sections = []rooms.PlanSection{imaging, steroids2, transfer}
		checkReferral(t, "referral with plan", got, want)
		other, err := s.Referral(t.Context(), "r-2")
		if err != nil {
			t.Fatalf("get other referral: %v", err)
		}
		if len(other.Plan.Sections) != 0 {
			t.Errorf("other referral has sections %+v", other.Plan.Sections)
		}
	}},
}

var participantTests = []subtest{
	{"added_participants_come_back_oldest_first", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := f.referral("r-1", at(0))
		f.createReferral(t, want)
		added := []rooms.Participant{
			{UserID: f.colleague.ID, Name: f.colleague.Name, AddedBy: f.referrer.ID, AddedAt: at(time.Minute)},
			{UserID: f.specialist.ID, Name: f.specialist.Name, AddedBy: f.colleague.ID, AddedAt: at(2 * time.Minute)},
		}
		for _, i := range []int{1, 0} {
			inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.AddParticipant(ctx, "r-1", added[i]) })
		}
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		want.Participants = append(want.Participants, added...)
		checkReferral(t, "referral with participants", got, want)
	}},
	{"adding_twice_is_duplicate", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		p := rooms.Participant{UserID: f.referrer.ID, Name: f.referrer.Name, AddedBy: f.colleague.ID, AddedAt: at(time.Hour)}
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.AddParticipant(t.Context(), "r-1", p) })
		wantDuplicate(t, "add an existing participant", err)
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		if len(got.Participants) != 1 {
			t.Errorf("participants %+v, want only the referrer", got.Participants)
		}
	}},
}

var readMarkerTests = []subtest{
	{"absent_marker_is_zero", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		got, err := s.ReadMarker(t.Context(), "r-1", f.referrer.ID)
		if err != nil || got != 0 {
			t.Errorf("absent marker: %d, %v; want 0, nil", got, err)
		}
	}},
	{"marker_only_rises", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		f.createReferral(t, f.referral("r-2", at(0)))
		for _, step := range []struct {
			set, want int64
		}{{5, 5}, {3, 5}, {5, 5}, {9, 9}, {0, 9}} {
			inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
				return tx.SetReadMarker(ctx, "r-1", f.referrer.ID, step.set)
			})
			got, err := s.ReadMarker(t.Context(), "r-1", f.referrer.ID)
			if err != nil {
				t.Fatalf("read marker: %v", err)
			}
			if got != step.want {
				t.Errorf("after setting %d: marker %d, want %d", step.set, got, step.want)
			}
		}
		for _, other := range []struct{ referral, user string }{{"r-1", f.colleague.ID}, {"r-2", f.referrer.ID}} {
			got, err := s.ReadMarker(t.Context(), other.referral, other.user)
			if err != nil || got != 0 {
				t.Errorf("marker of %s in %s: %d, %v; want 0", other.user, other.referral, got, err)
			}
		}
	}},
}
