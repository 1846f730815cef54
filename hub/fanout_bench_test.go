package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	// The raw readers never answer a ping: one unanswered would close
	// their sockets mid-run, and the loop would wait forever.
	e := newEnvWith(b, openEmbedded(b), func(c *envConfig) { c.WS.PingInterval = time.Hour })
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
		nc := rawSubscriber(b, e.base, sessionCookie+"="+c.cookieValue(), id, ref.HeadSeq)
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := nc.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // presence frames settle
	body, _ := json.Marshal(rooms.MessageBody{Body: "Patient is stable overnight; <MRI> booked for 08:00 & steroids given."})
	event := rooms.Event{ReferralID: id, Kind: rooms.EventMessage, Author: rooms.AuthorOf(u), At: time.Now(), Body: body}
	sizes := make([]int64, b.N)
	for i := range sizes {
		event.Seq = ref.HeadSeq + int64(i) + 1
		sizes[i] = wsFrameLen(len(realtime.EventFrame("referral:"+id, event)))
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

// rawSubscriber opens a WebSocket by hand on a bare TCP connection and
// subscribes to a referral's room after seq, so that reading it costs the
// benchmark no allocations: the hub's are all it measures.
func rawSubscriber(b *testing.B, base, cookie, id string, after int64) net.Conn {
	b.Helper()
	u, _ := url.Parse(base)
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\nCookie: %s\r\n\r\n", u.Host, base, cookie)
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %v %v", res, err)
	}
	sub := fmt.Sprintf(`{"type":"subscribe","topic":"referral:%s","after":%d}`, id, after)
	// A client's frame is masked; a zero mask leaves the payload as it is.
	frame := append([]byte{0x81, 0x80 | byte(len(sub)), 0, 0, 0, 0}, sub...)
	if _, err := nc.Write(frame); err != nil {
		b.Fatal(err)
	}
	for { // up to the subscribed frame
		line, err := br.ReadString('}')
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(line, `"subscribed"`) {
			break
		}
	}
	// What br holds past it is the presence frame, which is not counted.
	return nc
}

// wsFrameLen is the bytes a server frame of n payload bytes takes on the
// wire: a 2-byte header, 4 more past 125 bytes (and 64 KiB is the most).
func wsFrameLen(n int) int64 {
	if n <= 125 {
		return int64(n) + 2
	}
	return int64(n) + 4
}
