package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"patientpass/hub/broker"
	"patientpass/hub/broker/redisbroker"
	"patientpass/hub/broker/redisbroker/redistest"
)

// brokerWait bounds every wait for a delivery or a resync. It is generous
// because it is a failure bound, not a performance assertion.
const brokerWait = 20 * time.Second

type brokerDelivery struct {
	topic   string
	payload string
}

// brokerRecorder is a BrokerHandler that remembers what it was given.
type brokerRecorder struct {
	mu         sync.Mutex
	deliveries []brokerDelivery // guarded by mu
	resyncs    int              // guarded by mu
	// block, when set, makes Deliver wait until it is closed.
	block chan struct{}
}

func (r *brokerRecorder) Deliver(topic string, payload []byte) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, brokerDelivery{topic, string(payload)})
}

func (r *brokerRecorder) Resync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs++
}

func (r *brokerRecorder) snapshot() ([]brokerDelivery, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]brokerDelivery(nil), r.deliveries...), r.resyncs
}

func (r *brokerRecorder) resyncCount() int {
	_, n := r.snapshot()
	return n
}

// waitFor waits until cond holds for what r has recorded, and fails the test
// naming what it waited for if it does not within brokerWait.
func (r *brokerRecorder) waitFor(t *testing.T, what string, cond func(d []brokerDelivery, resyncs int) bool) {
	t.Helper()
	deadline := time.Now().Add(brokerWait)
	for {
		d, n := r.snapshot()
		if cond(d, n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; got %d deliveries (last: %v) and %d resyncs", brokerWait, what, len(d), lastDeliveries(d, 3), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForPayload waits for a delivery of payload on topic.
func (r *brokerRecorder) waitForPayload(t *testing.T, topic, payload string) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%q on %s", payload, topic), func(d []brokerDelivery, _ int) bool {
		return containsDelivery(d, brokerDelivery{topic, payload})
	})
}

func containsDelivery(d []brokerDelivery, want brokerDelivery) bool {
	for _, got := range d {
		if got == want {
			return true
		}
	}
	return false
}

func lastDeliveries(d []brokerDelivery, n int) []brokerDelivery {
	if len(d) > n {
		return d[len(d)-n:]
	}
	return d
}

// onTopic returns the payloads delivered on topic, in order.
func onTopic(d []brokerDelivery, topic string) []string {
	var out []string
	for _, x := range d {
		if x.topic == topic {
			out = append(out, x.payload)
		}
	}
	return out
}

func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

func brokerCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokerWait)
	t.Cleanup(cancel)
	return ctx
}

func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestMemoryBrokerDeliversSubscribedTopicsInOrder(t *testing.T) {
	ctx := brokerCtx(t)
	rec := &brokerRecorder{}
	b := broker.NewMemory(rec)
	t.Cleanup(func() { _ = b.Close() })

	mustDo(t, "subscribe", b.Subscribe(ctx, "referral:1"))
	mustDo(t, "subscribe again", b.Subscribe(ctx, "referral:1")) // idempotent
	want := numbered(200)
	// A payload is shared, not copied: each publication has bytes of its
	// own, as the hub's envelopes do.
	for _, p := range want {
		mustDo(t, "publish", b.Publish(ctx, "referral:1", []byte(p)))
		mustDo(t, "publish unsubscribed", b.Publish(ctx, "referral:2", []byte("not for us")))
	}
	mustDo(t, "publish", b.Publish(ctx, "referral:1", []byte("end")))
	rec.waitForPayload(t, "referral:1", "end")

	d, resyncs := rec.snapshot()
	if got := onTopic(d, "referral:1"); strings.Join(got, ",") != strings.Join(append(want, "end"), ",") {
		t.Errorf("referral:1 delivered %d payloads, not 0..199 then end in order: %v…", len(got), got[:min(len(got), 10)])
	}
	if got := onTopic(d, "referral:2"); len(got) != 0 {
		t.Errorf("unsubscribed referral:2 was delivered %d times", len(got))
	}
	if resyncs != 0 {
		t.Errorf("Resync called %d times; nothing was lost", resyncs)
	}

	t.Run("unsubscribe stops delivery", func(t *testing.T) {
		mustDo(t, "unsubscribe", b.Unsubscribe(ctx, "referral:1"))
		mustDo(t, "subscribe", b.Subscribe(ctx, "system"))
		mustDo(t, "publish", b.Publish(ctx, "referral:1", []byte("after unsubscribe")))
		mustDo(t, "publish", b.Publish(ctx, "system", []byte("marker")))
		rec.waitForPayload(t, "system", "marker")
		d, _ := rec.snapshot()
		if containsDelivery(d, brokerDelivery{"referral:1", "after unsubscribe"}) {
			t.Error("a publication on an unsubscribed topic was delivered")
		}
	})
}

func TestMemoryBrokerSlowHandlerDoesNotBlockPublish(t *testing.T) {
	ctx := brokerCtx(t)
	rec := &brokerRecorder{block: make(chan struct{})}
	b := broker.NewMemory(rec)
	t.Cleanup(func() { _ = b.Close() })
	mustDo(t, "subscribe", b.Subscribe(ctx, "board:p1"))

	// Far more than the broker queues, while the handler is stuck.
	const published = 50_000
	done := make(chan error, 1)
	go func() {
		for i := range published {
			if err := b.Publish(ctx, "board:p1", []byte(strconv.Itoa(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		mustDo(t, "publish", err)
	case <-time.After(brokerWait):
		t.Fatalf("Publish was still blocked after %s behind a stuck handler", brokerWait)
	}
	close(rec.block)

	rec.waitFor(t, "a Resync after publications were dropped", func(_ []brokerDelivery, n int) bool { return n > 0 })
	d, _ := rec.snapshot()
	if len(d) >= published {
		t.Errorf("all %d publications were delivered; expected the bounded queue to drop some", published)
	}
	// What was delivered is in publication order.
	last := -1
	for _, x := range d {
		n, _ := strconv.Atoi(x.payload)
		if n <= last {
			t.Fatalf("delivered %d after %d", n, last)
		}
		last = n
	}
}

func TestMemoryBrokerAfterClose(t *testing.T) {
	ctx := brokerCtx(t)
	b := broker.NewMemory(&brokerRecorder{})
	mustDo(t, "ping", b.Ping(ctx))
	mustDo(t, "close", b.Close())
	mustDo(t, "close again", b.Close())
	if err := b.Publish(ctx, "system", nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v; want ErrBrokerClosed", err)
	}
	if err := b.Subscribe(ctx, "system"); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v; want ErrBrokerClosed", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ping after Close = %v; want ErrBrokerClosed", err)
	}
}

// startRedisBroker starts a broker ("a node") on rdb under prefix and closes
// it when the test ends.
func startRedisBroker(t *testing.T, rdb *redis.Client, prefix string) (*redisbroker.Broker, *brokerRecorder) {
	t.Helper()
	rec := &brokerRecorder{}
	b, err := redisbroker.New(brokerCtx(t), rdb, prefix, rec, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("NewRedisBroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b, rec
}

func TestRedisBrokerFansOutAcrossNodes(t *testing.T) {
	ctx := brokerCtx(t)
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	a, recA := startRedisBroker(t, rdb, prefix)
	b, recB := startRedisBroker(t, rdb, prefix)
	for _, n := range []*redisbroker.Broker{a, b} {
		mustDo(t, "subscribe", n.Subscribe(ctx, "referral:1"))
		mustDo(t, "subscribe", n.Subscribe(ctx, "referral:2"))
		mustDo(t, "subscribe again", n.Subscribe(ctx, "referral:1")) // idempotent
	}

	want := numbered(100)
	for _, p := range want {
		mustDo(t, "publish", a.Publish(ctx, "referral:1", []byte(p)))
	}
	for name, rec := range map[string]*brokerRecorder{"publishing node A": recA, "other node B": recB} {
		rec.waitFor(t, name+" to receive 100 publications", func(d []brokerDelivery, _ int) bool {
			return len(onTopic(d, "referral:1")) >= len(want)
		})
		d, resyncs := rec.snapshot()
		if got := onTopic(d, "referral:1"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s got referral:1 payloads out of order or duplicated: %v", name, got)
		}
		if resyncs != 0 {
			t.Errorf("%s: Resync called %d times with no connection lost", name, resyncs)
		}
	}

	t.Run("unsubscribe stops delivery", func(t *testing.T) {
		mustDo(t, "unsubscribe", b.Unsubscribe(ctx, "referral:1"))
		mustDo(t, "publish", a.Publish(ctx, "referral:1", []byte("after unsubscribe")))
		mustDo(t, "publish", a.Publish(ctx, "referral:2", []byte("marker")))
		recB.waitForPayload(t, "referral:2", "marker")
		recA.waitForPayload(t, "referral:1", "after unsubscribe")
		d, _ := recB.snapshot()
		if containsDelivery(d, brokerDelivery{"referral:1", "after unsubscribe"}) {
			t.Error("node B received a topic it had unsubscribed from")
		}
		n, err := rdb.PubSubNumSub(ctx, prefix+"referral:1").Result()
		mustDo(t, "PUBSUB NUMSUB", err)
		if n[prefix+"referral:1"] != 1 {
			t.Errorf("Redis counts %d subscribers to referral:1; want 1 (node A only)", n[prefix+"referral:1"])
		}
	})

	t.Run("prefixes isolate", func(t *testing.T) {
		other := redistest.Prefix(t)
		c, recC := startRedisBroker(t, rdb, other)
		mustDo(t, "subscribe", c.Subscribe(ctx, "referral:2"))
		mustDo(t, "publish", a.Publish(ctx, "referral:2", []byte("prefix A")))
		mustDo(t, "publish", c.Publish(ctx, "referral:2", []byte("prefix C")))
		recC.waitForPayload(t, "referral:2", "prefix C")
		recA.waitForPayload(t, "referral:2", "prefix A")
		if d, _ := recC.snapshot(); len(d) != 1 {
			t.Errorf("node on another prefix got %v; want only its own publication", d)
		}
		if d, _ := recA.snapshot(); containsDelivery(d, brokerDelivery{"referral:2", "prefix C"}) {
			t.Error("a publication under another prefix reached node A")
		}
	})
}

func TestRedisBrokerResyncsAfterItsConnectionIsKilled(t *testing.T) {
	ctx := brokerCtx(t)
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	a, recA := startRedisBroker(t, rdb, prefix)
	b, recB := startRedisBroker(t, rdb, prefix)
	for _, n := range []*redisbroker.Broker{a, b} {
		mustDo(t, "subscribe", n.Subscribe(ctx, "referral:1"))
		mustDo(t, "subscribe", n.Subscribe(ctx, "user:7"))
	}
	mustDo(t, "publish", b.Publish(ctx, "referral:1", []byte("before")))
	recA.waitForPayload(t, "referral:1", "before")

	old := redistest.KillClientNamed(t, ctx, rdb, a.ClientName())
	recA.waitFor(t, "Resync on node A after its connection was killed", func(_ []brokerDelivery, n int) bool { return n > 0 })

	// Resync comes once the subscriptions are back, so what is published
	// from now on arrives, on every topic.
	mustDo(t, "publish", b.Publish(ctx, "referral:1", []byte("after")))
	mustDo(t, "publish", b.Publish(ctx, "user:7", []byte("after")))
	recA.waitForPayload(t, "referral:1", "after")
	recA.waitForPayload(t, "user:7", "after")
	recB.waitForPayload(t, "user:7", "after")

	if n := recA.resyncCount(); n != 1 {
		t.Errorf("node A resynced %d times for one lost connection; want 1", n)
	}
	if n := recB.resyncCount(); n != 0 {
		t.Errorf("node B resynced %d times though its connection was not touched", n)
	}
	if id := redistest.ClientIDNamed(t, ctx, rdb, a.ClientName()); id == "" || id == old {
		t.Errorf("after the kill, node A's connection has id %q (was %s); want a new connection with the same name", id, old)
	}
}

func TestRedisBrokerResyncsAfterRedisRestarts(t *testing.T) {
	ctx := brokerCtx(t)
	addr, restart := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	b, rec := startRedisBroker(t, rdb, redistest.Prefix(t))
	mustDo(t, "subscribe", b.Subscribe(ctx, "system"))
	mustDo(t, "publish", b.Publish(ctx, "system", []byte("before")))
	rec.waitForPayload(t, "system", "before")

	restart()
	rec.waitFor(t, "Resync after Redis restarted", func(_ []brokerDelivery, n int) bool { return n > 0 })

	// The publishing client reconnects on its own schedule: retry until a
	// publication makes it through, within a bound.
	deadline := time.Now().Add(brokerWait)
	for i := 0; ; i++ {
		payload := "after " + strconv.Itoa(i)
		err := b.Publish(ctx, "system", []byte(payload))
		if err == nil {
			rec.waitForPayload(t, "system", payload)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publication succeeded within %s of the restart: %v", brokerWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustDo(t, "ping after the restart", b.Ping(ctx))
}

func TestRedisBrokerWhenRedisIsDown(t *testing.T) {
	ctx := brokerCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustDo(t, "listen", err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	b, _ := startRedisBroker(t, rdb, redistest.Prefix(t)) // a node may start while Redis is away
	if err := b.Ping(ctx); err == nil {
		t.Error("Ping succeeded with no Redis listening")
	}
	if err := b.Subscribe(ctx, "system"); err == nil {
		t.Error("Subscribe succeeded with no Redis listening")
	}
	if err := b.Publish(ctx, "system", []byte("x")); err == nil {
		t.Error("Publish succeeded with no Redis listening")
	}
}

// Publications made at once, alone and in pipelines (PublishAll), each
// arrive exactly once, on their own topic, and each publisher's arrive in
// the order it made them.
func TestRedisBrokerConcurrentPublicationsEachArriveOnce(t *testing.T) {
	ctx := brokerCtx(t)
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t)
	a, _ := startRedisBroker(t, rdb, prefix)
	b, recB := startRedisBroker(t, rdb, prefix)
	const publishers, each = 40, 25
	for p := range publishers {
		mustDo(t, "subscribe", b.Subscribe(ctx, fmt.Sprint("referral:", p)))
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			topic := fmt.Sprint("referral:", p)
			for i := 0; i < each; {
				if p%2 == 0 { // alone
					if err := a.Publish(ctx, topic, []byte(fmt.Sprint(i))); err != nil {
						t.Errorf("publish %d of %d: %v", i, p, err)
					}
					i++
					continue
				}
				var msgs []broker.Message
				for ; i < each && len(msgs) < 1+p%7; i++ {
					msgs = append(msgs, broker.Message{Topic: topic, Payload: []byte(fmt.Sprint(i))})
				}
				for j, err := range a.PublishAll(ctx, msgs) {
					if err != nil {
						t.Errorf("publish %s of %d: %v", msgs[j].Payload, p, err)
					}
				}
			}
		})
	}
	wg.Wait()
	recB.waitFor(t, "every publication", func(d []brokerDelivery, _ int) bool { return len(d) >= publishers*each })
	d, _ := recB.snapshot()
	if len(d) != publishers*each {
		t.Errorf("%d deliveries; want %d", len(d), publishers*each)
	}
	for p := range publishers {
		got := onTopic(d, fmt.Sprint("referral:", p))
		want := make([]string, each)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("referral:%d got %v; want %v", p, got, want)
		}
	}
}
