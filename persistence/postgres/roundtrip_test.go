package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// roundTrips counts the round trips made on the connections it dials: a
// write after a read (or the first write) starts one.
type roundTrips struct {
	mu      sync.Mutex
	n       int  // guarded by mu
	writing bool // guarded by mu
}

func (rt *roundTrips) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countedConn{Conn: c, rt: rt}, nil
}

func (rt *roundTrips) take() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n := rt.n
	rt.n = 0
	return n
}

type countedConn struct {
	net.Conn
	rt *roundTrips
}

func (c countedConn) Write(b []byte) (int, error) {
	c.rt.mu.Lock()
	if !c.rt.writing {
		c.rt.n++
		c.rt.writing = true
	}
	c.rt.mu.Unlock()
	return c.Conn.Write(b)
}

func (c countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rt.mu.Lock()
	c.rt.writing = false
	c.rt.mu.Unlock()
	return n, err
}

// TestTransactionRoundTrips counts the round trips transactions cost: BEGIN
// goes with the first statement, and the writes that need no answer with
// the statement after them.
func TestTransactionRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse url: %v", err)
	}
	cfg.MaxConns = 1 // so the statements are prepared on the first run
	// A connection idle for a while is pinged when acquired: not part of
	// the transaction.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	rt := &roundTrips{}
	cfg.ConnConfig.DialFunc = rt.dial
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	s := &Store{reader: reader{q: pool}, pool: pool}

	at := time.Date(2025, time.March, 4, 9, 30, 0, 0, time.UTC)
	u := rooms.User{ID: "u-1", Email: "referrer@demo.test", Name: "Dr Referrer", ProfessionalBody: rooms.BodyGMC,
		RegistrationNumber: "7654321", Organisation: "RJR", Roles: []rooms.Role{rooms.RoleClinician},
		Status: rooms.UserActive, PasswordHash: "x", CreatedAt: at, UpdatedAt: at}
	err = s.InTx(ctx, func(tx rooms.Tx) error {
		for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester Hospital"}} {
			if err := tx.PutOrganisation(ctx, o); err != nil {
				return err
			}
		}
		if err := tx.PutPathway(ctx, rooms.MSCC("RET")); err != nil {
			return err
		}
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		err := tx.CreateReferral(ctx, rooms.Referral{ID: "r-1", PathwayID: "mscc", Status: rooms.StatusDraft,
			Priority: rooms.PriorityUrgent, Patient: rooms.Patient{NHSNumber: "9434765919", Name: "Test Patient"},
			Referrer: rooms.AuthorOf(u), ReferringOrganisation: "RJR", ReceivingOrganisation: "RET", CreatedAt: at, UpdatedAt: at})
		return err
	})
	if err != nil {
		t.Fatalf("store the fixture: %v", err)
	}

	// appendMessage appends the next event, moving the referral's head.
	appendMessage := func(ctx context.Context, tx rooms.Tx) (rooms.Referral, error) {
		r, err := tx.LockReferral(ctx, "r-1")
		if err != nil {
			return r, err
		}
		r.HeadSeq++
		e := rooms.Event{ReferralID: r.ID, Seq: r.HeadSeq, Kind: rooms.EventMessage, Author: rooms.AuthorOf(u),
			At: at, Body: json.RawMessage(`{"body":"hello"}`)}
		if err := tx.AppendEvent(ctx, e); err != nil {
			return r, err
		}
		return r, tx.UpdateReferral(ctx, r)
	}
	var refs int
	for _, tc := range []struct {
		name string
		want int
		fn   func(ctx context.Context, tx rooms.Tx) error
	}{
		{"nothing", 0, func(context.Context, rooms.Tx) error { return nil }},
		{"write_checking_its_rows", 2, func(ctx context.Context, tx rooms.Tx) error {
			// BEGIN and the update of a referral not locked, which must
			// find it; COMMIT once it has.
			r, err := tx.Referral(ctx, "r-1")
			if err != nil {
				return err
			}
			rt.take() // the read is not what this case counts
			return tx.UpdateReferral(ctx, r)
		}},
		{"append_message", 2, func(ctx context.Context, tx rooms.Tx) error {
			// BEGIN and the lock; the writes and COMMIT.
			_, err := appendMessage(ctx, tx)
			return err
		}},
		{"audit_entry", 1, func(ctx context.Context, tx rooms.Tx) error {
			// BEGIN, the entry and COMMIT.
			return tx.AppendAudit(ctx, rooms.AuditEntry{Chain: 3, At: at, ActorID: u.ID, Action: rooms.ActionRead,
				Event: "referral.view", ReferralID: "r-1", Outcome: rooms.OutcomeSuccess})
		}},
		{"command", 2, func(ctx context.Context, tx rooms.Tx) error {
			// BEGIN and the lock; the writes, the command's record, the
			// audit entry and COMMIT.
			r, err := appendMessage(ctx, tx)
			if err != nil {
				return err
			}
			refs++
			err = tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: u.ID, Ref: "ref-" + strconv.Itoa(refs), Kind: "referral.message",
				ReferralID: r.ID, Result: json.RawMessage(`{}`), At: at})
			if err != nil {
				return err
			}
			return tx.AppendAudit(ctx, rooms.AuditEntry{Chain: rooms.AuditChainFor(r.ID), At: at, ActorID: u.ID,
				Action: rooms.ActionCreate, Event: "referral.message", ReferralID: r.ID, Outcome: rooms.OutcomeSuccess})
		}},
		{"command_with_notifications", 2, func(ctx context.Context, tx rooms.Tx) error {
			// As a command, with the notifications it causes sent with
			// the other writes, whatever their number.
			r, err := appendMessage(ctx, tx)
			if err != nil {
				return err
			}
			refs++
			var ns []rooms.Notification
			for i := range 3 {
				ns = append(ns, rooms.Notification{ID: fmt.Sprintf("n-%06d-%d", refs, i), UserID: u.ID, Kind: "message",
					ReferralID: r.ID, Seq: r.HeadSeq, At: at, Title: "Message"})
			}
			if err := tx.AddNotifications(ctx, ns); err != nil {
				return err
			}
			err = tx.RecordCommand(ctx, rooms.CommandRecord{ActorID: u.ID, Ref: "ref-" + strconv.Itoa(refs), Kind: "referral.message",
				ReferralID: r.ID, Result: json.RawMessage(`{}`), At: at})
			if err != nil {
				return err
			}
			return tx.AppendAudit(ctx, rooms.AuditEntry{Chain: rooms.AuditChainFor(r.ID), At: at, ActorID: u.ID,
				Action: rooms.ActionCreate, Event: "referral.message", ReferralID: r.ID, Outcome: rooms.OutcomeSuccess})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The first run prepares the statements on the connection.
			for run := range 2 {
				rt.take()
				if err := s.InTx(ctx, func(tx rooms.Tx) error { return tc.fn(ctx, tx) }); err != nil {
					t.Fatalf("run %d: %v", run+1, err)
				}
			}
			if got := rt.take(); got != tc.want {
				t.Errorf("%d round trips, want %d", got, tc.want)
			}
		})
	}
}
