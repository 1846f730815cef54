package redisbroker_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/broker"
	"patientpass/hub/broker/redisbroker"
	"patientpass/hub/broker/redisbroker/redistest"
	"patientpass/rooms"
)

// benchTopic is the topic every broker benchmark publishes on.
const benchTopic = "referral:0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d"

// benchPayload returns a publication the size of the hub's envelope for a
// message event ({"k":"event","n":node,"e":event}), so that copying and
// sending it cost what they cost in the hub.
func benchPayload(b *testing.B) []byte {
	b.Helper()
	body, err := json.Marshal(rooms.MessageBody{Body: "Power 4/5 both legs since 06:00; MRI whole spine booked for 14:30"})
	if err != nil {
		b.Fatal(err)
	}
	p, err := json.Marshal(struct {
		Kind  string      `json:"k"`
		Node  string      `json:"n"`
		Event rooms.Event `json:"e"`
	}{"event", "node-1", rooms.Event{
		ReferralID: "0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d",
		Seq:        42,
		Kind:       rooms.EventMessage,
		Author:     rooms.Author{ID: "5e1d7c2a-3b4f-4e6d-8a9b-0c1d2e3f4a5b", Name: "Dr Asha Patel", Role: rooms.RoleClinician, Organisation: "RJR"},
		At:         time.Date(2026, 11, 20, 16, 0, 0, 123456000, time.UTC),
		Body:       body,
	}})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// countingHandler counts what a broker delivers and never blocks it.
type countingHandler struct {
	delivered atomic.Int64
	resyncs   atomic.Int64
}

func (h *countingHandler) Deliver(topic string, payload []byte) { h.delivered.Add(1) }
func (h *countingHandler) Resync()                              { h.resyncs.Add(1) }

// report waits for deliveries to stop arriving, then reports the share of
// the b.N publications that never reached the handler (the broker dropped
// them and told the handler to resync instead).
func (h *countingHandler) report(b *testing.B) {
	b.Helper()
	const quiet = 50 * time.Millisecond
	deadline := time.Now().Add(deliveryWait)
	for last := int64(-1); ; {
		n := h.delivered.Load()
		if n == last || time.Now().After(deadline) {
			break
		}
		last = n
		time.Sleep(quiet)
	}
	b.ReportMetric(float64(int64(b.N)-h.delivered.Load())/float64(b.N), "dropped/op")
	b.ReportMetric(float64(h.resyncs.Load()), "resyncs")
}

// signallingHandler passes the size of each delivery to the benchmark, which
// waits for it.
type signallingHandler struct {
	got chan int
}

func (h *signallingHandler) Deliver(topic string, payload []byte) {
	if topic == benchTopic {
		h.got <- len(payload)
	}
}
func (h *signallingHandler) Resync() {}

// deliveryWait bounds the wait for one delivery: a failure bound, not a
// performance assertion.
const deliveryWait = 20 * time.Second

// startBenchBroker builds a broker delivering to h with newBroker, subscribes
// it to benchTopic, and closes it when the benchmark ends.
func startBenchBroker(b *testing.B, h broker.Handler, newBroker func(*testing.B, broker.Handler) broker.Broker) broker.Broker {
	b.Helper()
	br := newBroker(b, h)
	b.Cleanup(func() {
		if err := br.Close(); err != nil {
			b.Errorf("close broker: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), deliveryWait)
	defer cancel()
	if err := br.Subscribe(ctx, benchTopic); err != nil {
		b.Fatalf("subscribe: %v", err)
	}
	return br
}

// benchmarkBroker measures a broker built by newBroker: Publish alone, from
// one goroutine and from several, and the round trip from Publish to the
// handler's Deliver.
func benchmarkBroker(b *testing.B, newBroker func(*testing.B, broker.Handler) broker.Broker) {
	payload := benchPayload(b)

	// Publish only. Deliveries happen meanwhile on the broker's goroutine,
	// as they do in the hub. Publishing flat out can outrun the subscriber;
	// what the broker dropped for that is reported as dropped/op.
	b.Run("publish", func(b *testing.B) {
		h := &countingHandler{}
		br := startBenchBroker(b, h, newBroker)
		ctx := context.Background()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Publish(ctx, benchTopic, payload); err != nil {
				b.Fatalf("publish: %v", err)
			}
		}
		b.StopTimer()
		h.report(b)
	})

	// Several publishers at once, as the hub's publisher goroutines are.
	b.Run("publish_parallel", func(b *testing.B) {
		h := &countingHandler{}
		br := startBenchBroker(b, h, newBroker)
		ctx := context.Background()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Publish(ctx, benchTopic, payload); err != nil {
					b.Errorf("publish: %v", err)
					return
				}
			}
		})
		b.StopTimer()
		h.report(b)
	})

	// Publish, then wait for the subscriber's handler to receive it: the
	// latency a publication adds between a commit and its delivery.
	b.Run("round_trip", func(b *testing.B) {
		h := &signallingHandler{got: make(chan int, 1)}
		br := startBenchBroker(b, h, newBroker)
		ctx := context.Background()
		timeout := time.NewTimer(deliveryWait)
		defer timeout.Stop()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Publish(ctx, benchTopic, payload); err != nil {
				b.Fatalf("publish: %v", err)
			}
			timeout.Reset(deliveryWait)
			select {
			case n := <-h.got:
				if n != len(payload) {
					b.Fatalf("delivered %d bytes, published %d", n, len(payload))
				}
			case <-timeout.C:
				b.Fatalf("no delivery within %s", deliveryWait)
			}
		}
	})
}

func BenchmarkMemoryBroker(b *testing.B) {
	benchmarkBroker(b, func(_ *testing.B, h broker.Handler) broker.Broker { return broker.NewMemory(h) })
}

// BenchmarkRedisBroker runs against the shared test Redis, under a prefix of
// its own; redistest skips it when Redis does not answer (unless CI is set).
func BenchmarkRedisBroker(b *testing.B) {
	rdb := redistest.Client(b)
	prefix := redistest.Prefix(b)
	benchmarkBroker(b, func(b *testing.B, h broker.Handler) broker.Broker {
		ctx, cancel := context.WithTimeout(context.Background(), deliveryWait)
		defer cancel()
		br, err := redisbroker.New(ctx, rdb, prefix, h, zerolog.Nop())
		if err != nil {
			b.Fatalf("NewRedisBroker: %v", err)
		}
		return br
	})
}
