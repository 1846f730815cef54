package hub_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"patientpass/hub/broker"
	"patientpass/hub/broker/redisbroker"
	"patientpass/hub/broker/redisbroker/redistest"
	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// clusterOrigin is the public URL every node of a test cluster shares, as
// nodes behind one load balancer do.
const clusterOrigin = "http://patientpass.test"

// cluster is n nodes on 127.0.0.1 sharing one Postgres schema and one Redis
// (under a prefix of the test's own). Each node has its own store pool,
// service and broker, as separate processes would.
type cluster struct {
	nodes []*env
}

// newCluster starts n nodes on Redis rdb.
func newCluster(t *testing.T, n int, rdb *redis.Client) *cluster {
	t.Helper()
	dbURL := pgtest.URL(t)
	prefix := redistest.Prefix(t)
	cl := &cluster{}
	for range n {
		store, err := postgres.Open(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		cl.nodes = append(cl.nodes, newEnvWith(t, store, func(c *envConfig) {
			c.PublicURL = clusterOrigin
			c.broker = func(h broker.Handler) (broker.Broker, error) {
				return redisbroker.New(context.Background(), rdb, prefix, h, zerolog.New(io.Discard))
			}
		}))
	}
	return cl
}

// node i's WebSocket client for the browser c (logged in on any node: the
// session is shared).
func (cl *cluster) ws(c *client, i int) (*wsclient.Client, *recorder) {
	return c.ws(clusterOrigin, cl.nodes[i].base)
}

func TestClusterMessageOnOneNodeReachesTheOther(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	rm := cl.nodes[0].room()
	referrer, specialist, rc, sc, id := rm.referrer, rm.specialist, rm.rc, rm.sc, rm.id

	swc, srec := cl.ws(sc, 1)
	subscribe(t, swc, id, 2)
	rwc, _ := cl.ws(rc, 0)
	for i := range 10 {
		if ack := post(t, rwc, id, fmt.Sprintf("message %d", i)); ack.Seq != int64(3+i) {
			t.Fatalf("ack %+v; want seq %d", ack, 3+i)
		}
	}
	topic := wire.ReferralTopic(id)
	srec.waitSeq(t, topic, 12)
	if got := srec.seqs(topic); !contiguous(got, 3, 12) {
		t.Fatalf("node B saw %v; want 3…12 in order", got)
	}
	// Presence spans the nodes: the specialist on B sees the referrer,
	// who is subscribed on A, once A announces it.
	subscribe(t, rwc, id, 12)
	srec.waitPresence(t, referrer.ID, specialist.ID)
	// And so does typing.
	if err := rwc.Typing(id); err != nil {
		t.Fatal(err)
	}
	srec.wait(t, "typing from node A", func(r *recorder) bool {
		f, ok := r.frameOf(wire.TypeTyping, nil)
		return ok && f.User.ID == referrer.ID
	})
}

func TestClusterResumeAfterDisconnect(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	rm := cl.nodes[0].room()
	rc, sc, id := rm.rc, rm.sc, rm.id
	topic := wire.ReferralTopic(id)
	rwc, _ := cl.ws(rc, 0)

	first, _ := cl.ws(sc, 1)
	subscribe(t, first, id, 0)
	last := first.LastSeq(topic)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		post(t, rwc, id, fmt.Sprintf("while away %d", i))
	}
	again, rec := cl.ws(sc, 1)
	if head := subscribe(t, again, id, last); head != last+50 {
		t.Fatalf("head after resume = %d; want %d", head, last+50)
	}
	if got := rec.seqs(topic); !contiguous(got, last+1, last+50) {
		t.Fatalf("resume after %d gave %v; want exactly the 50 missed, in order", last, got)
	}

	// At the seam of replay and live, with posts racing on both nodes,
	// subscribers joining one after another each end with every event
	// after their own starting point, once. They are connected beforehand
	// so their subscriptions all land while the posts race.
	const writers, each, joiners = 8, 25, 12
	var late []*wsclient.Client
	var recs []*recorder
	for i := range joiners {
		w, r := cl.ws(sc, i%2)
		late, recs = append(late, w), append(recs, r)
	}
	var wg sync.WaitGroup
	for n := range writers {
		w, _ := cl.ws(rc, n%2)
		wg.Go(func() {
			for i := range each {
				post(t, w, id, fmt.Sprintf("racing %d from writer %d", i, n))
			}
		})
	}
	// Each starts from a point already stored when the race begins, so
	// that its after is never beyond the head.
	from := func(i int) int64 { return (last + 50) * int64(i) / joiners }
	for i, w := range late {
		time.Sleep(10 * time.Millisecond)
		subscribe(t, w, id, from(i))
	}
	wg.Wait()
	head := last + 50 + writers*each
	for i, r := range recs {
		r.waitSeq(t, topic, head)
		if got := r.seqs(topic); !contiguous(got, from(i)+1, head) {
			t.Fatalf("late subscriber %d saw %v; want %d…%d once each", i, got, from(i)+1, head)
		}
		if st := late[i].Stats(); st.Duplicates != 0 || st.Gaps != 0 {
			t.Fatalf("late subscriber %d stats %+v", i, st)
		}
	}
}

func TestClusterConcurrentWritersSeeOneSequence(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	a := cl.nodes[0]
	referrer := a.user("RJR", rooms.UserActive, rooms.RoleClinician)
	rc := a.login(referrer.Email)
	id := rc.newReferral()
	topic := wire.ReferralTopic(id)

	var readers []*recorder
	for i := range 4 {
		s := a.user("RET", rooms.UserActive, rooms.RoleSpecialist)
		w, r := cl.ws(a.login(s.Email), i%2)
		subscribe(t, w, id, 0)
		readers = append(readers, r)
	}
	const writers, each = 20, 10
	var wg sync.WaitGroup
	for i := range writers {
		s := a.user("RET", rooms.UserActive, rooms.RoleSpecialist)
		w, _ := cl.ws(a.login(s.Email), i%2)
		wg.Go(func() {
			for j := range each {
				post(t, w, id, fmt.Sprintf("writer %d message %d", i, j))
			}
		})
	}
	wg.Wait()
	head := int64(2 + writers*each)
	var want []string
	for i, r := range readers {
		r.waitSeq(t, topic, head)
		r.mu.Lock()
		var got []string
		for _, ev := range r.events[topic] {
			got = append(got, fmt.Sprintf("%d:%s", ev.Seq, ev.Event))
		}
		r.mu.Unlock()
		if len(got) != int(head) {
			t.Fatalf("reader %d saw %d events; want %d", i, len(got), head)
		}
		if i == 0 {
			want = got
		} else if !slices.Equal(got, want) {
			t.Fatalf("reader %d saw a different sequence from reader 0", i)
		}
	}
}

// faultTest runs posts on both nodes while fault strikes the broker, and
// checks every subscriber ends with every event, in order, once. The fault
// may call posted(n) to wait until n more posts have been acknowledged, so
// that publications are surely lost while it lasts.
func faultTest(t *testing.T, cl *cluster, fault func(posted func(n int64))) {
	t.Helper()
	rm := cl.nodes[0].room()
	rc, sc, id := rm.rc, rm.sc, rm.id
	topic := wire.ReferralTopic(id)
	var subs []*wsclient.Client
	var recs []*recorder
	for i := range 4 {
		w, r := cl.ws(sc, i%2)
		subscribe(t, w, id, 0)
		subs, recs = append(subs, w), append(recs, r)
	}
	const perNode = 60
	var acked atomic.Int64
	var wg sync.WaitGroup
	for n := range 2 {
		w, _ := cl.ws(rc, n)
		wg.Go(func() {
			for i := range perNode {
				post(t, w, id, fmt.Sprintf("node %d post %d", n, i))
				acked.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	posted := func(n int64) {
		target := min(acked.Load()+n, 2*perNode)
		waitUntil(t, fmt.Sprintf("%d more posts", n), func() bool { return acked.Load() >= target })
	}
	posted(10)
	fault(posted)
	wg.Wait()
	head := int64(2 + 2*perNode)
	for i, r := range recs {
		r.waitSeq(t, topic, head)
		if got := r.seqs(topic); !contiguous(got, 1, head) {
			t.Fatalf("subscriber %d saw %v; want 1…%d once each", i, got, head)
		}
		if st := subs[i].Stats(); st.Duplicates != 0 || st.Gaps != 0 {
			t.Fatalf("subscriber %d stats %+v", i, st)
		}
	}
}

func TestClusterSurvivesARedisRestart(t *testing.T) {
	addr, stop, start := redistest.StartStoppable(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	cl := newCluster(t, 2, rdb)
	faultTest(t, cl, func(posted func(int64)) {
		stop()
		posted(10) // published to nobody
		start()
	})
}

func TestClusterSurvivesKilledPubSubConnections(t *testing.T) {
	rdb := redistest.Client(t)
	cl := newCluster(t, 2, rdb)
	faultTest(t, cl, func(posted func(int64)) {
		// Kill the nodes' subscription connections again and again while
		// posts go on, so some publications find nobody listening.
		ctx := context.Background()
		for range 30 {
			for _, n := range cl.nodes {
				if id := redistest.ClientIDNamed(t, ctx, rdb, n.rt.Broker().(*redisbroker.Broker).ClientName()); id != "" {
					_ = rdb.ClientKillByFilter(ctx, "ID", id).Err()
				}
			}
			posted(1)
		}
	})
	var repairs float64
	for _, n := range cl.nodes {
		repairs += n.metric("patientpass_ws_gap_repairs_total")
	}
	t.Logf("gap repairs across the nodes: %v", repairs)
}

func TestClusterSuspensionClosesSocketsOnEveryNode(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	a := cl.nodes[0]
	_, admin, _ := a.enrolledAdmin("RJR")
	v := a.user("RJR", rooms.UserActive, rooms.RoleClinician)
	vc := a.login(v.Email)
	onA, _ := cl.ws(vc, 0)
	onB, _ := cl.ws(vc, 1)
	a.clock.Advance(time.Minute)
	if res := admin.do("POST", "/api/admin/users/"+v.ID+"/suspend", nil); res.status != 200 {
		t.Fatalf("suspend = %d %s", res.status, res.raw)
	}
	for name, wc := range map[string]*wsclient.Client{"A": onA, "B": onB} {
		select {
		case <-wc.Done():
		case <-time.After(waitFor):
			t.Fatalf("socket on node %s still open after suspension", name)
		}
		if code := websocket.CloseStatus(wc.Err()); code != wire.CloseSessionEnded {
			t.Fatalf("node %s closed with %v; want 4001", name, wc.Err())
		}
	}
}
