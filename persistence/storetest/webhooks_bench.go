package storetest

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"patientpass/rooms"
)

// BenchWebhooks measures what the webhooks' outbox adds to each message
// posted (rooms.Service.PostMessage, by several writers at once, as
// Bench's post_message_parallel): in a draft, which queues nothing and
// sends no statement; in a submitted referral whose receiving organisation
// has no subscription (the outbox's INSERT … SELECT is sent and writes
// nothing); and with one subscription (it writes a row). open returns a
// new, empty, migrated store.
func BenchWebhooks(b *testing.B, open func(tb testing.TB) rooms.Store) {
	for _, c := range []struct {
		name      string
		submitted bool
		webhooks  int
	}{
		{"draft", false, 0},
		{"submitted_no_webhook", true, 0},
		{"submitted_one_webhook", true, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := open(b)
			f := benchFixture(b, s)
			for i := range c.webhooks {
				w := webhook("wh-bench-"+strconv.Itoa(i), "RET", rooms.WebhookEventMessage)
				if err := s.InTx(b.Context(), func(tx rooms.Tx) error { return tx.CreateWebhook(b.Context(), w) }); err != nil {
					b.Fatal(err)
				}
			}
			writers := benchParallelism * runtime.GOMAXPROCS(0)
			ids := make([]string, writers)
			for i := range ids {
				r := f.referral(rooms.NewID(), at(0))
				if c.submitted {
					r.Status, r.SubmittedAt = rooms.StatusSubmitted, ptr(at(time.Second))
				}
				if err := s.InTx(b.Context(), func(tx rooms.Tx) error { return tx.CreateReferral(b.Context(), r) }); err != nil {
					b.Fatal(err)
				}
				ids[i] = r.ID
			}
			svc := rooms.NewService(rooms.Config{Store: s, Node: "bench"})
			caller := rooms.Caller{User: f.referrer, ClientAddr: "192.0.2.10"}
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
					_, err := svc.PostMessage(ctx, caller, rooms.PostMessage{Ref: ids[w] + "-" + strconv.FormatInt(n, 10), ReferralID: ids[w], Body: benchBody})
					if err != nil {
						b.Errorf("post %d on %s: %v", n, ids[w], err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			var total int64
			for i := range counts {
				total += counts[i].Load()
			}
			if q, err := s.QueuedWebhookMessages(ctx, ""); err != nil || int64(q) != total*int64(c.webhooks)*boolInt(c.submitted) {
				b.Fatalf("outbox holds %d (%v) after %d posts", q, err, total)
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
