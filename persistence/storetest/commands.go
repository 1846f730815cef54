package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"patientpass/rooms"
)

var commandTests = []subtest{
	{"record_then_repeat", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		rec := rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref-1", Kind: "message", ReferralID: "r-1",
			Result: json.RawMessage(`{"referral_id":"r-1","seq":4}`), At: at(time.Minute)}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.RecordCommand(ctx, rec); err != nil {
				return err
			}
			got, err := tx.Command(ctx, rec.ActorID, rec.Ref)
			if err != nil {
				return err
			}
			checkCommand(t, "read in its own transaction", got, rec)
			return nil
		})
		got, err := s.Command(t.Context(), rec.ActorID, rec.Ref)
		if err != nil {
			t.Fatalf("read command: %v", err)
		}
		checkCommand(t, "recorded", got, rec)

		repeat := rec
		repeat.Result, repeat.At = json.RawMessage(`{"referral_id":"r-1","seq":5}`), at(time.Hour)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.RecordCommand(t.Context(), repeat) })
		if !errors.Is(err, rooms.ErrDuplicate) {
			t.Errorf("recording a repeated ref: %v, want ErrDuplicate", err)
		}
		got, err = s.Command(t.Context(), rec.ActorID, rec.Ref)
		if err != nil {
			t.Fatalf("read command: %v", err)
		}
		checkCommand(t, "after a repeat", got, rec)
	}},
	{"refs_belong_to_their_actor", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		mine := rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "same-ref", Kind: "create_referral", ReferralID: "r-1",
			Result: json.RawMessage(`{"referral_id":"r-1","seq":1}`), At: at(0)}
		theirs := rooms.CommandRecord{ActorID: f.colleague.ID, Ref: "same-ref", Kind: "create_referral", ReferralID: "r-2",
			Result: json.RawMessage(`{"referral_id":"r-2","seq":1}`), At: at(time.Second)}
		for _, rec := range []rooms.CommandRecord{mine, theirs} {
			inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.RecordCommand(ctx, rec) })
		}
		for _, want := range []rooms.CommandRecord{mine, theirs} {
			got, err := s.Command(t.Context(), want.ActorID, want.Ref)
			if err != nil {
				t.Fatalf("read command: %v", err)
			}
			checkCommand(t, want.ActorID, got, want)
		}
	}},
	{"rolled_back_record_leaves_no_record", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		rec := rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref-rollback", Kind: "message", Result: json.RawMessage(`{"seq":1}`), At: at(0)}
		err := s.InTx(t.Context(), func(tx rooms.Tx) error {
			if err := tx.RecordCommand(t.Context(), rec); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("transaction returned %v, want the function's error", err)
		}
		_, err = s.Command(t.Context(), rec.ActorID, rec.Ref)
		wantNotFound(t, "command of a rolled-back record", err)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.RecordCommand(ctx, rec) })
	}},
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.Command(t.Context(), "u-nobody", "ref")
		wantNotFound(t, "read missing command", err)
	}},
}

func checkCommand(t *testing.T, what string, got, want rooms.CommandRecord) {
	t.Helper()
	if got.ActorID != want.ActorID || got.Ref != want.Ref || got.Kind != want.Kind ||
		got.ReferralID != want.ReferralID || !sameTime(got.At, want.At) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
	if !sameJSON(got.Result, want.Result) {
		t.Errorf("%s: result %s, want %s", what, got.Result, want.Result)
	}
}
