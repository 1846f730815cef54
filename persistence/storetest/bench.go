package storetest

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"patientpass/rooms"
)

// benchBody is a message of the length clinicians typically type.
const benchBody = "Power 4/5 both legs since 06:00; MRI whole spine booked for 14:30"

// benchParallelism is how many writers per CPU the parallel benchmarks run:
// many rooms are busy at once, and each writer spends most of its time
// waiting for the database.
const benchParallelism = 4

// Bench measures what each message posted in a room costs the store: the
// append alone (lock the referral, append the event, move its head, in one
// transaction) and the whole rooms.Service.PostMessage command (claim the
// ref, authorise, append, audit). Each is run by one writer and by several
// writers on referrals of their own. open returns a new, empty, migrated
// store; the caller's open registers its own cleanup.
//
// Besides time and allocations each benchmark reports ops/s, and checks
// afterwards that every operation it counted was stored.
func Bench(b *testing.B, open func(tb testing.TB) rooms.Store) {
	s := open(b)
	f := benchFixture(b, s)
	newReferral := func(b *testing.B) string {
		b.Helper()
		id := rooms.NewID()
		err := s.InTx(b.Context(), func(tx rooms.Tx) error { return tx.CreateReferral(b.Context(), f.referral(id, at(0))) })
		if err != nil {
			b.Fatalf("create referral %s: %v", id, err)
		}
		return id
	}
	author := rooms.AuthorOf(f.referrer)
	appendOne := func(ctx context.Context, id string, _ int64) error {
		return s.InTx(ctx, func(tx rooms.Tx) error {
			_, err := appendMessage(ctx, tx, id, author, benchBody)
			return err
		})
	}
	svc := rooms.NewService(rooms.Config{Store: s, Node: "bench"})
	caller := rooms.Caller{User: f.referrer, ClientAddr: "192.0.2.10"}
	postOne := func(ctx context.Context, id string, n int64) error {
		_, err := svc.PostMessage(ctx, caller, rooms.PostMessage{Ref: id + "-" + strconv.FormatInt(n, 10), ReferralID: id, Body: benchBody})
		return err
	}

	for _, op := range []struct {
		name string
		do   func(ctx context.Context, referral string, n int64) error
	}{
		{"append_message", appendOne},
		{"post_message", postOne},
	} {
		b.Run(op.name, func(b *testing.B) {
			id := newReferral(b)
			ctx := b.Context()
			b.ReportAllocs()
			var n int64
			for b.Loop() {
				n++
				if err := op.do(ctx, id, n); err != nil {
					b.Fatalf("%s %d: %v", op.name, n, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			wantHeads(b, s, map[string]int64{id: n})
		})
		b.Run(op.name+"_parallel", func(b *testing.B) {
			writers := benchParallelism * runtime.GOMAXPROCS(0)
			ids := make([]string, writers)
			for i := range ids {
				ids[i] = newReferral(b)
			}
			counts := make([]atomic.Int64, writers)
			var next atomic.Int64
			ctx := b.Context()
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := int(next.Add(1) - 1)
				for pb.Next() {
					n := counts[w].Add(1)
					if err := op.do(ctx, ids[w], n); err != nil {
						b.Errorf("%s %d on %s: %v", op.name, n, ids[w], err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			want := map[string]int64{}
			for i, id := range ids {
				want[id] = counts[i].Load()
			}
			wantHeads(b, s, want)
		})
	}
}

// benchFixture stores the part of the fixture a room needs: the referring
// and receiving organisations, the pathway and the referrer.
func benchFixture(b *testing.B, s rooms.Store) *fixture {
	b.Helper()
	f := &fixture{s: s, mscc: rooms.MSCC("RET")}
	f.referrer = testUser("u-referrer", "referrer@demo.test", "RJR", at(-4*time.Hour), rooms.RoleClinician)
	ctx := b.Context()
	err := s.InTx(ctx, func(tx rooms.Tx) error {
		for _, o := range []rooms.Organisation{
			{ODS: "RET", Name: "The Walton Centre"},
			{ODS: "RJR", Name: "Countess of Chester Hospital"},
		} {
			if err := tx.PutOrganisation(ctx, o); err != nil {
				return err
			}
		}
		if err := tx.PutPathway(ctx, f.mscc); err != nil {
			return err
		}
		return tx.CreateUser(ctx, f.referrer)
	})
	if err != nil {
		b.Fatalf("store the fixture: %v", err)
	}
	return f
}

// wantHeads fails the benchmark unless each referral's head is at the
// number of messages counted for it, so a benchmark cannot pass by storing
// nothing.
func wantHeads(b *testing.B, s rooms.Store, want map[string]int64) {
	b.Helper()
	for id, n := range want {
		r, err := s.Referral(b.Context(), id)
		if err != nil {
			b.Fatalf("read referral %s: %v", id, err)
		}
		if r.HeadSeq != n {
			b.Fatalf("referral %s: head seq %d after %d messages", id, r.HeadSeq, n)
		}
	}
}
