package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/realtime"
	"patientpass/rooms"
)

// BenchmarkFanout10 publishes one committed message to a referral's room
// with 10 local subscribers on real WebSockets, and reports what the node
// allocates per message (B/op, allocs/op: divide by 10 for a delivery).
// The clients drain their sockets without decoding, counting the bytes
// they receive, so the benchmark waits for every delivery without reading
// any of the hub's state.
func BenchmarkFanout10(b *testing.B) {
	e := newEnv(b, openEmbedded(b))
	ctx := context.Background()
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	c := e.login(u.Email)
	id := c.newReferral()
	ref, err := e.svc.Referral(ctx, rooms.Caller{User: u}, id)
	if err != nil {
		b.Fatal(err)
	}
	const subscribers = 10
	var received atomic.Int64
	for range subscribers {
		wc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.base, "http")+"/ws", &websocket.DialOptions{
			HTTPClient: c.http, HTTPHeader: http.Header{"Origin": {e.base}}})
		if err != nil {
			b.Fatal(err)
		}
		wc.SetReadLimit(1 << 20)
		sub, _ := json.Marshal(map[string]any{"type": "subscribe", "topic": "referral:" + id, "after": ref.HeadSeq})
		if err := wc.Write(ctx, websocket.MessageText, sub); err != nil {
			b.Fatal(err)
		}
		for { // up to the subscribed frame
			_, data, err := wc.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(string(data), `"subscribed"`) {
				break
			}
		}
		nc := websocket.NetConn(ctx, wc, websocket.MessageText)
		go func() { _, _ = io.CopyBuffer(countingWriter{&received}, nc, make([]byte, 64<<10)) }()
	}
	time.Sleep(100 * time.Millisecond) // presence frames settle
	body, _ := json.Marshal(rooms.MessageBody{Body: "Patient is stable overnight; <MRI> booked for 08:00 & steroids given."})
	event := rooms.Event{ReferralID: id, Kind: rooms.EventMessage, Author: rooms.AuthorOf(u), At: time.Now(), Body: body}
	sizes := make([]int64, b.N)
	for i := range sizes {
		event.Seq = ref.HeadSeq + int64(i) + 1
		sizes[i] = int64(len(realtime.EventFrame("referral:"+id, event)))
	}
	received.Store(0)
	var want int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		event.Seq = ref.HeadSeq + int64(i) + 1
		want += subscribers * sizes[i]
		e.rt.Publish(ctx, event)
		for received.Load() < want {
			runtime.Gosched()
		}
	}
}

type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}
