package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// room is a store holding two referrals, r-1 and r-2, made by user.
type room struct {
	store *postgres.Store
	user  rooms.User
	at    time.Time
}

// newRoom opens a store on url and stores the room in it.
func newRoom(t *testing.T, url string) room {
	t.Helper()
	at := time.Date(2025, time.March, 4, 9, 30, 0, 0, time.UTC)
	rm := room{store: openStore(t, url), at: at, user: rooms.User{
		ID: "u-1", Email: "referrer@demo.test", Name: "Dr Referrer", ProfessionalBody: rooms.BodyGMC,
		RegistrationNumber: "7654321", Organisation: "RJR", Roles: []rooms.Role{rooms.RoleClinician},
		Status: rooms.UserActive, PasswordHash: "x", CreatedAt: at, UpdatedAt: at,
	}}
	ctx := t.Context()
	err := rm.store.InTx(ctx, func(tx rooms.Tx) error {
		for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester Hospital"}} {
			if err := tx.PutOrganisation(ctx, o); err != nil {
				return err
			}
		}
		if err := tx.PutPathway(ctx, rooms.MSCC("RET")); err != nil {
			return err
		}
		if err := tx.CreateUser(ctx, rm.user); err != nil {
			return err
		}
		for _, id := range []string{"r-1", "r-2"} {
			if err := tx.CreateReferral(ctx, rm.referral(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("store the room: %v", err)
	}
	return rm
}

func (rm room) referral(id string) rooms.Referral {
	return rooms.Referral{
		ID:                    id,
		PathwayID:             "mscc",
		Status:                rooms.StatusDraft,
		Priority:              rooms.PriorityUrgent,
		Patient:               rooms.Patient{NHSNumber: "9434765919", Name: "Test Patient", DateOfBirth: "1956-04-30", Sex: "female"},
		Form:                  map[string]any{},
		ContactPhone:          "0151 000 0000",
		ConsultantDiscussed:   true,
		Referrer:              rooms.AuthorOf(rm.user),
		ReferringOrganisation: "RJR",
		ReceivingOrganisation: "RET",
		CreatedAt:             rm.at,
		UpdatedAt:             rm.at,
		Participants:          []rooms.Participant{{UserID: rm.user.ID, Name: rm.user.Name, AddedBy: rm.user.ID, AddedAt: rm.at}},
	}
}

func (rm room) event(referralID string, seq int64) rooms.Event {
	return rooms.Event{ReferralID: referralID, Seq: seq, Kind: rooms.EventMessage, Author: rooms.AuthorOf(rm.user),
		At: rm.at.Add(time.Duration(seq) * time.Second), Body: json.RawMessage(`{"body":"hello"}`)}
}

// wantEvents fails the test unless referralID has n events stored.
func (rm room) wantEvents(t *testing.T, what, referralID string, n int) {
	t.Helper()
	evs, err := rm.store.Events(t.Context(), referralID, 0, 0)
	if err != nil {
		t.Fatalf("%s: read events of %s: %v", what, referralID, err)
	}
	if len(evs) != n {
		t.Errorf("%s: %s has %d events, want %d", what, referralID, len(evs), n)
	}
}

// UpdateReferral, AppendEvent, RecordCommand and AddNotifications are sent
// with the next statement, or with the commit, and AppendAudit with the
// commit: their failure must be reported there, named as the write reported
// it, and must fail the transaction even when Postgres did not abort it (a
// write that changed no row) and the caller carries on.
func TestDeferredWriteFailureFailsTheTransaction(t *testing.T) {
	t.Parallel()
	failures := []struct {
		name   string
		write  func(ctx context.Context, tx rooms.Tx, rm room) error
		target error
		named  string
		// atCommit is set for a write held back for the commit: the
		// statements after it do not send it, and succeed.
		atCommit bool
	}{
		{"taken_event_seq", func(ctx context.Context, tx rooms.Tx, rm room) error {
			return tx.AppendEvent(ctx, rm.event("r-1", 1))
		}, rooms.ErrDuplicate, "append event 1 to referral r-1", false},
		{"update_of_missing_referral", func(ctx context.Context, tx rooms.Tx, rm room) error {
			return tx.UpdateReferral(ctx, rm.referral("r-ghost"))
		}, rooms.ErrNotFound, "update referral r-ghost", false},
		{"taken_command_ref", func(ctx context.Context, tx rooms.Tx, rm room) error {
			return tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: rm.user.ID, Ref: "ref-taken", Kind: "referral.message",
				Result: json.RawMessage(`{}`), At: rm.at})
		}, rooms.ErrDuplicate, "record command ref-taken of user u-1", false},
		{"taken_notification_id", func(ctx context.Context, tx rooms.Tx, rm room) error {
			return tx.AddNotifications(ctx, []rooms.Notification{{ID: "n-taken", UserID: rm.user.ID, Kind: "message", At: rm.at, Title: "x"}})
		}, rooms.ErrDuplicate, "add notification n-taken", false},
		{"audit_chain_without_head", func(ctx context.Context, tx rooms.Tx, rm room) error {
			return tx.AppendAudit(ctx, rooms.AuditEntry{Chain: rooms.AuditChains + 1, At: rm.at, Action: rooms.ActionRead,
				Event: "referral.view", Outcome: rooms.OutcomeSuccess})
		}, rooms.ErrNotFound, "append audit entry to chain 17", true},
	}
	// next is the statement after the failed write, by the way it is sent;
	// nil leaves the failure to the commit.
	next := []struct {
		name string
		do   func(ctx context.Context, tx rooms.Tx, rm room) error
	}{
		{"row", func(ctx context.Context, tx rooms.Tx, rm room) error {
			_, err := tx.ReadMarker(ctx, "r-2", rm.user.ID)
			return err
		}},
		{"batch", func(ctx context.Context, tx rooms.Tx, rm room) error {
			_, err := tx.Referral(ctx, "r-2")
			return err
		}},
		{"rows", func(ctx context.Context, tx rooms.Tx, rm room) error {
			_, err := tx.Events(ctx, "r-2", 0, 0)
			return err
		}},
		{"write", func(ctx context.Context, tx rooms.Tx, rm room) error {
			return tx.SetReadMarker(ctx, "r-2", rm.user.ID, 0)
		}},
		{"commit", nil},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			rm := newRoom(t, pgtest.URL(t))
			ctx := t.Context()
			err := rm.store.InTx(ctx, func(tx rooms.Tx) error {
				if err := tx.AppendEvent(ctx, rm.event("r-1", 1)); err != nil {
					return err
				}
				if err := tx.AddNotifications(ctx, []rooms.Notification{{ID: "n-taken", UserID: rm.user.ID, Kind: "message", At: rm.at, Title: "x"}}); err != nil {
					return err
				}
				return tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: rm.user.ID, Ref: "ref-taken", Kind: "referral.message",
					Result: json.RawMessage(`{}`), At: rm.at})
			})
			if err != nil {
				t.Fatalf("append the first event, add the first notification and record the first command: %v", err)
			}
			for _, n := range next {
				t.Run("reported_by_"+n.name, func(t *testing.T) {
					wantFailure := func(what string, err error) {
						t.Helper()
						if !errors.Is(err, f.target) || !strings.Contains(err.Error(), f.named) {
							t.Errorf("%s: %v; want %v, naming %q", what, err, f.target, f.named)
						}
					}
					err := rm.store.InTx(ctx, func(tx rooms.Tx) error {
						// A write that succeeds, queued ahead of the one
						// that fails: the failure must roll it back.
						if err := tx.AppendEvent(ctx, rm.event("r-2", 1)); err != nil {
							t.Errorf("queue the event of r-2: %v", err)
						}
						if err := f.write(ctx, tx, rm); err != nil {
							t.Errorf("queue the failing write: %v", err)
						}
						if n.do == nil {
							return nil
						}
						if f.atCommit {
							if err := n.do(ctx, tx, rm); err != nil {
								t.Errorf("next statement: %v; want it to succeed, with the write held for the commit", err)
							}
							return nil
						}
						wantFailure("next statement", n.do(ctx, tx, rm))
						wantFailure("statement after that", n.do(ctx, tx, rm))
						return nil // carrying on regardless
					})
					wantFailure("transaction", err)
					rm.wantEvents(t, "after the failed transaction", "r-2", 0)
				})
			}
		})
	}
}

// Every read sees the writes queued before it, whichever way it is sent.
func TestReadsSeeDeferredWrites(t *testing.T) {
	t.Parallel()
	rm := newRoom(t, pgtest.URL(t))
	ctx := t.Context()
	err := rm.store.InTx(ctx, func(tx rooms.Tx) error {
		rec := rooms.CommandRecord{ActorID: rm.user.ID, Ref: "ref-1", Kind: "referral.message", ReferralID: "r-1",
			Result: json.RawMessage(`{"seq":1}`), At: rm.at}
		if err := tx.RecordCommand(ctx, rec); err != nil {
			return err
		}
		if got, err := tx.Command(ctx, rec.ActorID, rec.Ref); err != nil || string(got.Result) != `{"seq": 1}` {
			t.Errorf("command after recording it (a row): result %s, %v", got.Result, err)
		}

		if err := tx.AppendEvent(ctx, rm.event("r-1", 1)); err != nil {
			return err
		}
		if evs, err := tx.Events(ctx, "r-1", 0, 0); err != nil || len(evs) != 1 {
			t.Errorf("events after appending one (rows): %d, %v", len(evs), err)
		}

		r := rm.referral("r-1")
		r.HeadSeq = 1
		if err := tx.UpdateReferral(ctx, r); err != nil {
			return err
		}
		if got, err := tx.LockReferral(ctx, "r-1"); err != nil || got.HeadSeq != 1 {
			t.Errorf("referral after moving its head (a batch): head %d, %v", got.HeadSeq, err)
		}

		return nil
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	rm.wantEvents(t, "after commit", "r-1", 1)
	if r, err := rm.store.Referral(ctx, "r-1"); err != nil || r.HeadSeq != 1 {
		t.Errorf("r-1 after commit: head %d, %v", r.HeadSeq, err)
	}
}

// A failed transaction must not leave its connection inside a transaction
// for the next caller: with one connection in the pool, the next
// transaction would run in it and commit the failed one's writes.
func TestFailedTransactionLeavesNoTransactionOpen(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fail func(ctx context.Context, cancel context.CancelFunc) error
	}{
		{"error", func(context.Context, context.CancelFunc) error { return errBoom }},
		{"cancelled_context", func(ctx context.Context, cancel context.CancelFunc) error {
			cancel()
			return ctx.Err()
		}},
		{"panic", func(context.Context, context.CancelFunc) error { panic(errBoom) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rm := newRoom(t, pgtest.URL(t)+"&pool_max_conns=1")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			func() {
				defer func() { _ = recover() }()
				_ = rm.store.InTx(ctx, func(tx rooms.Tx) error {
					if err := tx.AppendEvent(ctx, rm.event("r-1", 1)); err != nil {
						return err
					}
					// Sends the event.
					if _, err := tx.LockReferral(ctx, "r-1"); err != nil {
						t.Fatalf("lock referral: %v", err)
					}
					return tc.fail(ctx, cancel)
				})
			}()
			err := rm.store.InTx(t.Context(), func(tx rooms.Tx) error {
				return tx.AppendEvent(t.Context(), rm.event("r-2", 1))
			})
			if err != nil {
				t.Fatalf("next transaction: %v", err)
			}
			rm.wantEvents(t, "after the failed transaction and the next", "r-1", 0)
			rm.wantEvents(t, "after the next transaction", "r-2", 1)
		})
	}
}

func TestTransactionIsClosedAfterInTx(t *testing.T) {
	t.Parallel()
	rm := newRoom(t, pgtest.URL(t))
	var kept rooms.Tx
	if err := rm.store.InTx(t.Context(), func(tx rooms.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatalf("empty transaction: %v", err)
	}
	if _, err := kept.Referral(t.Context(), "r-1"); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("read through a transaction after InTx returned: %v, want %v", err, pgx.ErrTxClosed)
	}
}
