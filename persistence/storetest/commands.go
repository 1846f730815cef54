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
	{"claim_then_complete_then_repeat", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		rec := rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref-1", Kind: "message", ReferralID: "r-1", At: at(time.Minute)}
		result := json.RawMessage(`{"referral_id":"r-1","seq":4}`)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			_, claimed, err := tx.ClaimCommand(ctx, rec)
			if err != nil {
				return err
			}
			if !claimed {
				t.Errorf("first claim of a ref was not claimed")
			}
			pending, err := tx.Command(ctx, rec.ActorID, rec.Ref)
			if err != nil {
				return err
			}
			checkCommand(t, "claimed, not yet complete", pending, rec)
			return tx.CompleteCommand(ctx, rec.ActorID, rec.Ref, result)
		})
		want := rec
		want.Result = result
		got, err := s.Command(t.Context(), rec.ActorID, rec.Ref)
		if err != nil {
			t.Fatalf("read command: %v", err)
		}
		checkCommand(t, "completed", got, want)

		repeat := rec
		repeat.At = at(time.Hour)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			prior, claimed, err := tx.ClaimCommand(ctx, repeat)
			if err != nil {
				return err
			}
			if claimed {
				t.Errorf("repeated ref was claimed again")
			}
			checkCommand(t, "prior of a repeat", prior, want)
			return nil
		})
	}},
	{"refs_belong_to_their_actor", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		// A command that creates a referral has none when it is claimed.
		mine := rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "same-ref", Kind: "create_referral", At: at(0)}
		theirs := rooms.CommandRecord{ActorID: f.colleague.ID, Ref: "same-ref", Kind: "create_referral", At: at(time.Second)}
		for _, rec := range []rooms.CommandRecord{mine, theirs} {
			inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
				_, claimed, err := tx.ClaimCommand(ctx, rec)
				if err == nil && !claimed {
					t.Errorf("%s's ref was taken by another actor", rec.ActorID)
				}
				return err
			})
		}
		for _, want := range []rooms.CommandRecord{mine, theirs} {
			got, err := s.Command(t.Context(), want.ActorID, want.Ref)
			if err != nil {
				t.Fatalf("read command: %v", err)
			}
			checkCommand(t, want.ActorID, got, want)
		}
	}},
	{"rolled_back_claim_leaves_no_record", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		rec := rooms.CommandRecord{ActorID: f.referrer.ID, Ref: "ref-rollback", Kind: "message", At: at(0)}
		err := s.InTx(t.Context(), func(tx rooms.Tx) error {
			if _, _, err := tx.ClaimCommand(t.Context(), rec); err != nil {
				return err
			}
			if err := tx.CompleteCommand(t.Context(), rec.ActorID, rec.Ref, json.RawMessage(`{"seq":1}`)); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("transaction returned %v, want the function's error", err)
		}
		_, err = s.Command(t.Context(), rec.ActorID, rec.Ref)
		wantNotFound(t, "command of a rolled-back claim", err)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			_, claimed, err := tx.ClaimCommand(ctx, rec)
			if err == nil && !claimed {
				t.Errorf("ref of a rolled-back claim cannot be claimed again")
			}
			return err
		})
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
	switch {
	case len(want.Result) == 0 && len(got.Result) != 0:
		t.Errorf("%s: result %s before completion, want none", what, got.Result)
	case len(want.Result) != 0 && !sameJSON(got.Result, want.Result):
		t.Errorf("%s: result %s, want %s", what, got.Result, want.Result)
	}
}
