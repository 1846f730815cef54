package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"testing"
	"time"

	"patientpass/hub/broker/redisbroker/redistest"
	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
	"patientpass/persistence/postgres/pgtest"
)

// browser is a cookie jar speaking JSON to a node.
type browser struct {
	t    *testing.T
	http *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) do(method, u string, body any) (int, map[string]any) {
	b.t.Helper()
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, u, bytes.NewReader(buf))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// Two `serve` processes' worth of wiring on one Postgres and one Redis: a
// message posted through node 1's API reaches a WebSocket on node 2, and
// stopping node 2 closes its sockets with 1001.
func TestTwoNodesShareARoomThroughRedis(t *testing.T) {
	redistest.Client(t) // skips (or fails under CI) when Redis is absent
	redisURL := os.Getenv("PATIENTPASS_TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = redistest.DefaultURL
	}
	const public = "http://patientpass.test"
	env := func() map[string]string {
		return map[string]string{
			"PATIENTPASS_DATA_DIR": t.TempDir(), "DATABASE_URL": pgtest.URL(t), "REDIS_URL": redisURL,
			"PATIENTPASS_PUBLIC_URL": public, "PATIENTPASS_DEMO_PASSWORD": "demo password for tests",
		}
	}()
	one := startNode(t, env, "--demo")
	two := startNode(t, env)

	b := newBrowser(t)
	if code, body := b.do("POST", one.base+"/api/session", map[string]any{"email": "specialist@demo.test", "password": "demo password for tests"}); code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	code, body := b.do("GET", one.base+"/api/referrals", nil)
	list, _ := body["referrals"].([]any)
	if code != 200 || len(list) == 0 {
		t.Fatalf("referrals = %d %v", code, body)
	}
	ref := list[0].(map[string]any)
	id, head := ref["id"].(string), int64(ref["head_seq"].(float64))

	got := make(chan wsclient.Event, 10)
	closed := make(chan int, 10)
	u, _ := url.Parse(one.base)
	wc, err := wsclient.Dial(context.Background(), wsclient.Options{
		URL: two.base, Origin: public, Cookies: b.http.Jar.Cookies(u),
		OnEvent: func(e wsclient.Event) { got <- e },
		OnState: func(s wsclient.State) {
			if !s.Connected {
				closed <- s.CloseCode
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if h, err := wc.Subscribe(ctx, wire.ReferralTopic(id), head); err != nil || h != head {
		t.Fatalf("subscribe on node 2: head %d, %v; want %d", h, err, head)
	}
	if code, body := b.do("POST", one.base+"/api/referrals/"+id+"/messages", map[string]any{"ref": "cross-node", "body": "Bed 12 ready"}); code != 201 {
		t.Fatalf("post on node 1 = %d %v", code, body)
	}
	select {
	case e := <-got:
		if e.Seq != head+1 {
			t.Fatalf("node 2 delivered seq %d; want %d", e.Seq, head+1)
		}
	case <-ctx.Done():
		t.Fatal("the message posted on node 1 never reached node 2")
	}

	if code := two.stop(); code != 0 {
		t.Fatalf("node 2 exited %d", code)
	}
	select {
	case code := <-closed:
		if code != wire.CloseGoingAway {
			t.Fatalf("node 2 closed the socket with %d; want 1001", code)
		}
	case <-ctx.Done():
		t.Fatal("stopping node 2 did not close its socket")
	}
}
