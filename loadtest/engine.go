package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
)

// maxInFlight bounds the posts waiting for their ack; when it is reached
// the generator falls behind its rate rather than pile up goroutines, and
// the achieved rate shows it.
const maxInFlight = 20000

// sendTimeout is how long one post may wait for its ack, re-sent across
// reconnects, before it counts as unacknowledged.
const sendTimeout = 60 * time.Second

// run is one load test: its fixture, clients, posts and figures.
type run struct {
	cfg     config
	id      string
	out     io.Writer
	errw    io.Writer
	cluster *cluster // nodes loadtest started itself; nil against -url

	fx      *fixture
	rooms   []*room
	clients []*vclient
	marker  []byte // starts every post's body: "loadtest <run> #"
	posts   postLog

	delivery, acks, connects, resumes histogram
	requests                          histogram    // registrations: send to whole answer
	answered                          atomic.Int64 // registrations answered or failed
	inFlight                          sync.WaitGroup
	slots                             chan struct{}
	postErrors, retries, behind       atomic.Int64
	lastPostError                     atomic.Value // string
	connected, connectFailed          atomic.Int64
	postingFrom, postingTo            time.Time
	workers                           []*worker // idle's child processes, when it has them

	res result
}

// room is one referral and the clients subscribed to it.
type room struct {
	id, topic string
	members   []*vclient
}

// vclient is one WebSocket client and everything it received for its room.
type vclient struct {
	idx  int
	room *room
	conn atomic.Pointer[wsclient.Client] // nil until connected
	// subscribed is set once the client has subscribed; only such clients
	// are checked.
	subscribed atomic.Bool

	mu    sync.Mutex
	after int64   // the subscription's starting point
	ids   []int64 // by seq-after-1: 0 not received, -1 not a load post, post+1
	max   int64   // highest seq received
	dup   int64   // events received again, or at or below after
	ooo   int64   // events received below a higher one already received
	recv  int64   // distinct events received
	other int64   // events of other topics, which nothing subscribed to

	droppedAt atomic.Int64 // unix nanos of the storm's drop, 0 before
	resumed   atomic.Bool
}

func (v *vclient) client() *wsclient.Client { return v.conn.Load() }

func newRun(cfg config, out, errw io.Writer) *run {
	var b [3]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	r := &run{cfg: cfg, id: id, out: out, errw: errw, marker: []byte("loadtest " + id + " #"), slots: make(chan struct{}, maxInFlight)}
	r.res = result{Scenario: cfg.Scenario, Clients: cfg.Clients, Rooms: cfg.Rooms, Users: cfg.Users, TargetRate: cfg.Rate, DurationS: cfg.Duration.Seconds()}
	return r
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.errw, "loadtest %s: %s\n", r.id, fmt.Sprintf(format, args...))
}

// execute starts the nodes when asked, runs the scenario and tears down
// what it started.
func (r *run) execute(ctx context.Context) error {
	if r.cfg.Nodes > 0 {
		cl, err := startCluster(ctx, &r.cfg, r.id, r.logf)
		if cl != nil {
			defer cl.close()
		}
		if err != nil {
			return err
		}
		r.cluster = cl
	}
	r.res.Nodes = len(r.cfg.URLs)
	stopProgress := r.progress(ctx)
	defer stopProgress()
	err := scenarios[r.cfg.Scenario](ctx, r)
	if r.cluster != nil {
		r.res.GroupMean = r.cluster.groupMean(ctx)
	}
	if r.cluster != nil && err == nil {
		// Every entry the run wrote, in every chain, linked as it should
		// be: the audit trail of commands committed in concurrent groups.
		r.res.AuditVerify, err = r.cluster.verifyAudit(ctx)
		if err != nil {
			r.res.Failures = append(r.res.Failures, err.Error())
			err = nil
		}
	}
	return err
}

// prepare sets up users and referrals and builds the rooms and clients
// (not yet connected).
func (r *run) prepare(ctx context.Context) error {
	fx, err := setUp(ctx, r.cfg, r.id, r.logf)
	if err != nil {
		return err
	}
	r.fx = fx
	r.rooms = make([]*room, len(fx.rooms))
	for i, id := range fx.rooms {
		r.rooms[i] = &room{id: id, topic: wire.ReferralTopic(id)}
	}
	r.clients = make([]*vclient, r.cfg.Clients)
	for i := range r.clients {
		rm := r.rooms[i%len(r.rooms)]
		v := &vclient{idx: i, room: rm}
		rm.members = append(rm.members, v)
		r.clients[i] = v
	}
	capacity := int(r.cfg.Rate*r.cfg.Duration.Seconds()*1.05) + 100
	r.posts = postLog{recs: make([]postRec, capacity)}
	return nil
}

// clientSpec is how the i-th client connects; workers rebuild it from
// what their parent sends.
type clientSpec struct {
	URL, Origin string
	Cookies     []*http.Cookie
	Topic       string
}

func (r *run) spec(i int) clientSpec {
	n := i % len(r.cfg.URLs)
	return clientSpec{
		URL: r.cfg.URLs[n], Origin: r.cfg.Origins[n],
		Cookies: r.fx.session(i).cookies(), Topic: r.clients[i].room.topic,
	}
}

// dial connects one client and subscribes it to its topic from after.
func dial(ctx context.Context, s clientSpec, after int64, onEvent func(wsclient.Event), onFrame func(wire.ServerFrame)) (*wsclient.Client, error) {
	c, err := wsclient.Dial(ctx, wsclient.Options{
		URL: s.URL, Origin: s.Origin, Cookies: s.Cookies, OnEvent: onEvent, OnFrame: onFrame,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Subscribe(ctx, s.Topic, after); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, nil
}

// connectAll connects every client, cfg.DialConcurrency at a time. A client
// that cannot connect is counted and reported; the run goes on without it.
func (r *run) connectAll(ctx context.Context) {
	r.connectRange(ctx, 0, len(r.clients))
}

// connectRange connects clients [from, to).
func (r *run) connectRange(ctx context.Context, from, to int) {
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(r.cfg.DialConcurrency)
	var firstErr atomic.Value
	var failed atomic.Int64
	for i := from; i < to; i++ {
		v := r.clients[i]
		g.Go(func() error {
			t0 := time.Now()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, err := dial(dctx, r.spec(i), 0, func(ev wsclient.Event) { r.onEvent(v, ev) }, func(f wire.ServerFrame) { r.onFrame(v, f) })
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return nil
			}
			v.conn.Store(c)
			v.subscribed.Store(true)
			r.connects.record(time.Since(t0))
			r.connected.Add(1)
			return nil
		})
	}
	_ = g.Wait()
	r.connectFailed.Add(failed.Load())
	r.noteConnected(time.Since(start), failed.Load(), firstErr.Load())
}

// noteConnected adds a connection round to the result.
func (r *run) noteConnected(took time.Duration, failed int64, firstErr any) {
	r.res.ConnectS += took.Seconds()
	r.res.Connected = int(r.connected.Load())
	r.res.ConnectFailed = int(r.connectFailed.Load())
	if failed > 0 {
		r.res.Failures = append(r.res.Failures, fmt.Sprintf("%d clients could not connect (first: %v)", failed, firstErr))
	}
	r.logf("%d clients connected in %.1fs (%d failed)", r.res.Connected, took.Seconds(), failed)
}

// closeAll closes every connected client.
func (r *run) closeAll() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, v := range r.clients {
		c := v.client()
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = c.Close()
		})
	}
	wg.Wait()
}

// postID finds the load post number in an event, -1 when the event is not
// a load post.
func (r *run) postID(event []byte) int64 {
	i := bytes.Index(event, r.marker)
	if i < 0 {
		return -1
	}
	rest := event[i+len(r.marker):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	id, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return -1
	}
	return id
}

// onEvent records one delivery. It runs on the client's read goroutine.
func (r *run) onEvent(v *vclient, ev wsclient.Event) {
	if ev.Topic != v.room.topic {
		v.mu.Lock()
		v.other++
		v.mu.Unlock()
		return
	}
	id := r.postID(ev.Event)
	if !v.record(ev.Seq, id) {
		return
	}
	if id >= 0 {
		if sent := r.posts.sentAt(id); sent > 0 {
			r.delivery.record(ev.Received.Sub(time.Unix(0, sent)))
		}
	}
}

// record notes that seq carrying post id (-1: not a load post) arrived,
// and reports whether it was the first time.
func (v *vclient) record(seq, id int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := seq - v.after - 1
	if i < 0 {
		v.dup++ // at or below the subscription's start: never asked for
		return false
	}
	for int64(len(v.ids)) <= i {
		v.ids = append(v.ids, 0)
	}
	if v.ids[i] != 0 {
		v.dup++
		return false
	}
	if seq < v.max {
		v.ooo++
	}
	v.max = max(v.max, seq)
	v.recv++
	v.ids[i] = -1
	if id >= 0 {
		v.ids[i] = id + 1
	}
	return true
}

// onFrame notes the resubscription that ends a client's resume after the
// storm's drop.
func (r *run) onFrame(v *vclient, f wire.ServerFrame) {
	if f.Type != wire.TypeSubscribed || f.Topic != v.room.topic {
		return
	}
	at := v.droppedAt.Load()
	if at != 0 && v.resumed.CompareAndSwap(false, true) {
		r.resumes.record(time.Since(time.Unix(0, at)))
	}
}

// postLog holds every post, by number.
type postLog struct {
	recs []postRec
	next atomic.Int64
}

type postRec struct {
	room  int
	sent  atomic.Int64 // unix nanos of the first send
	acked atomic.Int64 // unix nanos of the ack, 0 before
	seq   atomic.Int64 // the seq the ack gave
}

// take reserves the next post number, false when the log is full.
func (l *postLog) take() (int64, bool) {
	id := l.next.Add(1) - 1
	if id >= int64(len(l.recs)) {
		l.next.Add(-1)
		return 0, false
	}
	return id, true
}

func (l *postLog) sentAt(id int64) int64 {
	if id < 0 || id >= int64(len(l.recs)) {
		return 0
	}
	return l.recs[id].sent.Load()
}

func (l *postLog) count() int64 { return min(l.next.Load(), int64(len(l.recs))) }

// postFor posts at cfg.Rate for d, spreading posts round-robin over the
// rooms, each from a random connected member.
func (r *run) postFor(ctx context.Context, d time.Duration) {
	if r.cfg.Rate <= 0 {
		return
	}
	interval := float64(time.Second) / r.cfg.Rate
	start := time.Now()
	if r.postingFrom.IsZero() {
		r.postingFrom = start
	}
	if r.cluster != nil {
		// The server's CPU over the window, per acknowledged post.
		if from, ok := r.cluster.cpuSample(); ok {
			acked := r.acks.count()
			defer func() {
				if to, ok := r.cluster.cpuSample(); ok {
					r.res.ServerCPU = perPost(from, to, r.acks.count()-acked)
				}
			}()
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	issued := 0
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		if elapsed >= d {
			break
		}
		for due := int(float64(elapsed)/interval) + 1; issued < due; issued++ {
			if !r.startPost(ctx) {
				r.postingTo = time.Now()
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	r.postingTo = time.Now()
}

// startPost sends one post on its own goroutine; false when the post log
// is full.
func (r *run) startPost(ctx context.Context) bool {
	select {
	case r.slots <- struct{}{}:
	default:
		r.behind.Add(1) // every slot waits for an ack: the node is not keeping up
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	id, ok := r.posts.take()
	if !ok {
		<-r.slots
		return false
	}
	rm := r.rooms[int(id)%len(r.rooms)]
	var from *vclient
	for range len(rm.members) {
		if m := rm.members[mrand.IntN(len(rm.members))]; m.client() != nil {
			from = m
			break
		}
	}
	if from == nil {
		<-r.slots
		r.postErrors.Add(1)
		r.lastPostError.Store("no connected member in the room")
		return true
	}
	r.posts.recs[id].room = int(id) % len(r.rooms)
	r.inFlight.Add(1)
	go func() {
		defer r.inFlight.Done()
		defer func() { <-r.slots }()
		r.post(ctx, from, id)
	}()
	return true
}

// post sends post id and waits for its ack. The client re-sends it under
// the same ref across reconnects; a refusal that says the node could not
// commit (unavailable, internal) is retried under the same ref too, which
// the node answers with the first commit if there was one.
func (r *run) post(ctx context.Context, from *vclient, id int64) {
	rec := &r.posts.recs[id]
	frame := wire.ClientFrame{
		Type: wire.TypeMessage, Ref: fmt.Sprintf("lt-%s-%d", r.id, id), Referral: from.room.id,
		Body: string(r.marker) + strconv.FormatInt(id, 10),
	}
	deadline := time.Now().Add(sendTimeout)
	rec.sent.Store(time.Now().UnixNano())
	for {
		sctx, cancel := context.WithDeadline(ctx, deadline)
		ack, err := from.client().Send(sctx, frame)
		cancel()
		if err == nil {
			now := time.Now()
			rec.seq.Store(ack.Seq)
			rec.acked.Store(now.UnixNano())
			r.acks.record(now.Sub(time.Unix(0, rec.sent.Load())))
			return
		}
		var se *wsclient.ServerError
		if errors.As(err, &se) && (se.Code == "unavailable" || se.Code == "internal") && time.Now().Before(deadline) && ctx.Err() == nil {
			r.retries.Add(1)
			time.Sleep(250 * time.Millisecond)
			continue
		}
		r.postErrors.Add(1)
		r.lastPostError.Store(err.Error())
		return
	}
}

// progress prints a line on stderr every cfg.Progress until stopped.
func (r *run) progress(ctx context.Context) func() {
	if r.cfg.Progress <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		tick := time.NewTicker(r.cfg.Progress)
		defer tick.Stop()
		var lastAcked int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if r.cfg.Scenario == "registrations" {
				r.logf("%4.0fs  registrations answered %d/%d", time.Since(start).Seconds(), r.answered.Load(), r.cfg.Clients)
				continue
			}
			acked := r.acks.count()
			rate := float64(acked-lastAcked) / r.cfg.Progress.Seconds()
			lastAcked = acked
			r.logf("%4.0fs  conns %d/%d  sent %d  acked %d (%.0f/s)  delivered %d  p99 %.1fms  reconnects %d",
				time.Since(start).Seconds(), r.connected.Load(), r.cfg.Clients, r.posts.count(), acked, rate,
				r.delivery.count(), ms(r.delivery.quantile(0.99)), r.reconnects())
		}
	}()
	return func() { cancel(); <-done }
}

func (r *run) reconnects() int64 {
	var n int64
	for _, v := range r.clients {
		if c := v.client(); c != nil {
			n += c.Stats().Reconnects
		}
	}
	return n
}
