package ws

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingConn counts the writes that reach the real socket under a sock.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// socketPair opens a real TCP connection on loopback and returns both
// ends: the server's wrapped in a sock over a countingConn.
func socketPair(t *testing.T, timeout time.Duration) (*sock, *countingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := ln.Accept()
		accepted <- nc
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc := <-accepted
	if nc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { nc.Close(); peer.Close() })
	cc := &countingConn{Conn: nc}
	return &sock{Conn: cc, timeout: timeout}, cc, peer
}

func TestSockCorkedWritesGoOutInOneWrite(t *testing.T) {
	s, cc, peer := socketPair(t, time.Minute)
	s.cork()
	for _, p := range []string{"one ", "two ", "three"} {
		if n, err := s.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("corked write: %d, %v", n, err)
		}
	}
	if n := cc.writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the socket while corked; want 0", n)
	}
	if err := s.uncork(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load(); n != 1 {
		t.Fatalf("uncork made %d writes to the socket; want 1", n)
	}
	got := make([]byte, len("one two three"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "one two three" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// Uncorked, a write goes straight out.
	if _, err := s.Write([]byte("four")); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load(); n != 2 {
		t.Fatalf("%d writes after an uncorked one; want 2", n)
	}
	if s.pending != nil {
		t.Error("the sock holds a buffer after its uncork")
	}
}

func TestSockCorkedBurstIsWrittenPastTheBound(t *testing.T) {
	s, cc, peer := socketPair(t, time.Minute)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	s.cork()
	frame := make([]byte, 1000)
	const frames = 100 // about three times corkFlush
	for range frames {
		if _, err := s.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	early := cc.writes.Load()
	if err := s.uncork(); err != nil {
		t.Fatal(err)
	}
	want := int64(frames*len(frame)/corkFlush) + 1
	if early == 0 || cc.writes.Load() != want {
		t.Fatalf("%d writes before the uncork, %d in all; want some, and %d in all", early, cc.writes.Load(), want)
	}
}

func TestSockWriteErrorSticks(t *testing.T) {
	s, _, peer := socketPair(t, time.Minute)
	s.Conn.Close()
	_ = peer
	s.cork()
	if _, err := s.Write([]byte("lost")); err != nil {
		t.Fatalf("a corked write only buffers; got %v", err)
	}
	if err := s.uncork(); err == nil {
		t.Fatal("uncork onto a closed socket succeeded")
	}
	if _, err := s.Write([]byte("after")); err == nil {
		t.Fatal("a write after a failed one succeeded")
	}
}

// TestSockStuckPeerTripsTheWriteTimeout writes to a peer that never reads
// until the kernel's buffers are full: the write that hangs must fail
// once the timeout passes, not block forever.
func TestSockStuckPeerTripsTheWriteTimeout(t *testing.T) {
	s, _, _ := socketPair(t, 50*time.Millisecond)
	chunk := make([]byte, 64<<10)
	var err error
	for err == nil {
		s.cork()
		_, err = s.Write(chunk[:corkFlush-1])
		if err == nil {
			err = s.uncork()
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a stuck peer ended with %v; want the deadline exceeded", err)
	}
}

// wsPair runs a real WebSocket server on a sock, with a real client.
func wsPair(t *testing.T, timeout time.Duration) (*websocket.Conn, *sock, *countingConn, *websocket.Conn) {
	t.Helper()
	type accepted struct {
		ws *websocket.Conn
		hj *smallBuffers
	}
	got := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &smallBuffers{ResponseWriter: counted{w}, timeout: timeout}
		ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Error(err)
			return
		}
		got <- accepted{ws, hj}
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CloseNow() })
	a := <-got
	t.Cleanup(func() { a.ws.CloseNow() })
	return a.ws, a.hj.sock, a.hj.sock.Conn.(*countingConn), client
}

// counted hijacks its connection wrapped in a countingConn.
type counted struct{ http.ResponseWriter }

func (w counted) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	return &countingConn{Conn: nc}, brw, err
}

func (w counted) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestCorkedMessagesShareOneWrite(t *testing.T) {
	ws, s, cc, client := wsPair(t, time.Minute)
	before := cc.writes.Load()
	s.cork()
	msgs := []string{"first", strings.Repeat("long ", 100), "third"}
	for _, m := range msgs {
		if err := ws.Write(context.Background(), websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.uncork(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - before; n != 1 {
		t.Fatalf("%d messages took %d writes to the socket; want 1", len(msgs), n)
	}
	for _, want := range msgs {
		_, got, err := client.Read(context.Background())
		if err != nil || string(got) != want {
			t.Fatalf("client read %.20q, %v; want %.20q", got, err, want)
		}
	}
}

// TestPongAndCloseGetOut shows the control frames coder/websocket writes
// itself still reach the peer through a sock: the pong the reader writes
// answering a ping, even when the writer corked the sock meanwhile, and
// the close.
func TestPongAndCloseGetOut(t *testing.T) {
	ws, s, _, client := wsPair(t, time.Minute)
	var wg sync.WaitGroup
	wg.Go(func() { _, _, _ = ws.Read(context.Background()) }) // the server's reader answers pings
	clientEnd := make(chan error, 1)
	go func() {
		_, _, err := client.Read(context.Background())
		clientEnd <- err
	}()
	if err := client.Ping(context.Background()); err != nil {
		t.Fatalf("ping answered uncorked: %v", err)
	}
	// A pong written while the writer has the sock corked waits for the
	// uncork, then goes out with the batch.
	s.cork()
	pinged := make(chan error, 1)
	go func() { pinged <- client.Ping(context.Background()) }()
	for {
		s.mu.Lock()
		waiting := s.pending != nil
		s.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.uncork(); err != nil {
		t.Fatal(err)
	}
	if err := <-pinged; err != nil {
		t.Fatalf("ping answered through a corked sock: %v", err)
	}
	if err := ws.Close(4008, "too slow"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := <-clientEnd; websocket.CloseStatus(err) != 4008 {
		t.Fatalf("client's read ended with %v; want the close 4008", err)
	}
	wg.Wait()
}

// writeText's frames, corked or not and of every length encoding, read
// back as the text frames of RFC 6455 §5.2 with their payloads whole.
func TestSockWriteTextFrames(t *testing.T) {
	s, _, peer := socketPair(t, time.Minute)
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, corkFlush - 2, corkFlush, 100_000}
	payload := func(i, n int) []byte {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte('a' + (i+j)%26)
		}
		return p
	}
	go func() {
		for i, n := range sizes { // uncorked, then corked
			_ = s.writeText(payload(i, n))
		}
		s.cork()
		for i, n := range sizes {
			_ = s.writeText(payload(i, n))
		}
		_ = s.uncork()
	}()
	_ = peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(peer)
	for round := range 2 {
		for i, n := range sizes {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				t.Fatalf("round %d frame %d: %v", round, i, err)
			}
			if h[0] != 0x81 || h[1]&0x80 != 0 {
				t.Fatalf("frame %d: header %#x %#x; want a final text frame, unmasked", i, h[0], h[1])
			}
			got := int(h[1])
			switch got {
			case 126:
				var ext [2]byte
				_, _ = io.ReadFull(br, ext[:])
				got = int(ext[0])<<8 | int(ext[1])
				if got < 126 {
					t.Fatalf("frame %d: length %d in the 16-bit form", i, got)
				}
			case 127:
				var ext [8]byte
				_, _ = io.ReadFull(br, ext[:])
				got = 0
				for _, b := range ext {
					got = got<<8 | int(b)
				}
				if got <= 0xffff {
					t.Fatalf("frame %d: length %d in the 64-bit form", i, got)
				}
			}
			if got != n {
				t.Fatalf("round %d frame %d: length %d; want %d", round, i, got, n)
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				t.Fatal(err)
			}
			if string(p) != string(payload(i, n)) {
				t.Fatalf("round %d frame %d: payload differs", round, i)
			}
		}
	}
}
