package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/wire"
)

// stableAfter is how long a connection must have lived for the backoff to
// start again from MinBackoff. Resetting on every successful connect instead
// would let a server that accepts and drops at once (overloaded, or crashing
// in a loop) be hammered at MinBackoff by every client.
const stableAfter = 5 * time.Second

// HandshakeError is a handshake the server answered with an HTTP status
// instead of switching protocols: 401 without a session, 403 for an Origin
// other than the public URL.
type HandshakeError struct {
	Status int
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("websocket handshake refused: HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// permanent reports whether repeating the handshake cannot help: the
// session is gone or the Origin is wrong. Other statuses (a proxy's 502
// while a node restarts, say) are retried.
func (e *HandshakeError) permanent() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// dial opens one connection.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, c.url, &c.dialOpts)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &HandshakeError{Status: resp.StatusCode}
		}
		return nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	conn.SetReadLimit(readLimit)
	return conn, nil
}

// install makes conn the live connection and returns its generation; it
// refuses (and the caller closes conn) when the client was stopped while
// dialling.
func (c *Client) install(conn *websocket.Conn, reconnect bool) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return 0, false
	}
	c.gen++
	c.conn = conn
	if reconnect {
		c.stats.Reconnects++
	}
	return c.gen, true
}

// run owns the client's read goroutine: it serves each connection until it
// drops, then reconnects, until the client stops.
func (c *Client) run(conn *websocket.Conn, gen uint64) {
	defer close(c.done)
	attempt := 0
	for {
		connected := time.Now()
		err := c.serve(conn, gen)
		if c.ctx.Err() != nil {
			return
		}
		if code := websocket.CloseStatus(err); code == wire.CloseSessionEnded || code == wire.CloseForbidden {
			c.stop(fmt.Errorf("server ended the connection: %w", err))
			return
		}
		if time.Since(connected) >= stableAfter {
			attempt = 0
		}
		var ok bool
		if conn, gen, ok = c.reconnect(&attempt); !ok {
			return
		}
	}
}

// reconnect dials until a connection is installed or the client stops.
func (c *Client) reconnect(attempt *int) (*websocket.Conn, uint64, bool) {
	for {
		timer := time.NewTimer(backoff(c.opts.MinBackoff, c.opts.MaxBackoff, *attempt, rand.Int64N))
		select {
		case <-c.ctx.Done():
			timer.Stop()
			return nil, 0, false
		case <-timer.C:
		}
		*attempt++
		conn, err := c.dial(c.ctx)
		if err == nil {
			gen, ok := c.install(conn, true)
			if !ok {
				_ = conn.CloseNow()
				return nil, 0, false
			}
			return conn, gen, true
		}
		var refused *HandshakeError
		if errors.As(err, &refused) && refused.permanent() {
			c.stop(err)
			return nil, 0, false
		}
		if c.ctx.Err() != nil {
			return nil, 0, false
		}
	}
}

// serve reads conn until it drops and returns why, resuming subscriptions
// and commands on a second goroutine meanwhile: resuming writes, and the
// server's replies must be read while those writes go out.
func (c *Client) serve(conn *websocket.Conn, gen uint64) error {
	c.notify(State{Connected: true, CloseCode: -1, Reconnects: c.reconnects()})
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		c.resume(conn, gen)
	}()
	err := c.readFrames(conn)
	c.mu.Lock()
	if c.gen == gen {
		c.conn = nil
	}
	c.mu.Unlock()
	// Closing makes any write still under way in resume fail at once.
	_ = conn.CloseNow()
	<-resumed
	c.notify(State{Connected: false, CloseCode: int(websocket.CloseStatus(err)), Err: err, Reconnects: c.reconnects()})
	return err
}

func (c *Client) reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.stats.Reconnects)
}

// readFrames hands every frame of conn to handleFrame until conn fails.
func (c *Client) readFrames(conn *websocket.Conn) error {
	for {
		// A background context: a cancelled read context would close the
		// connection at once, and Close wants to finish the close
		// handshake on it instead.
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			return err
		}
		received := time.Now()
		if typ != websocket.MessageText {
			c.mu.Lock()
			c.stats.Malformed++
			c.mu.Unlock()
			continue
		}
		c.handleFrame(data, received)
	}
}

// resume resubscribes every topic from its last seq, then re-sends every
// unanswered command under its original ref, on a new connection. Both are
// pipelined: the server answers them in order and nothing here waits.
func (c *Client) resume(conn *websocket.Conn, gen uint64) {
	c.wmu.Lock()
	c.mu.Lock()
	frames := c.resubscribeFramesLocked(gen)
	c.mu.Unlock()
	err := c.writeAll(conn, frames)
	c.wmu.Unlock()
	if err != nil {
		return
	}
	c.mu.Lock()
	frames = c.resendFramesLocked(gen)
	c.mu.Unlock()
	_ = c.writeAll(conn, frames)
}

// resubscribeFramesLocked returns a subscribe frame, from the last seq
// seen, for every subscription not yet sent on connection gen, and marks
// them sent. Topics go in name order so runs are repeatable.
func (c *Client) resubscribeFramesLocked(gen uint64) [][]byte {
	topics := make([]string, 0, len(c.subs))
	for topic, sub := range c.subs {
		if sub.sentOn != gen {
			topics = append(topics, topic)
		}
	}
	sort.Strings(topics)
	frames := make([][]byte, 0, len(topics))
	for _, topic := range topics {
		c.subs[topic].sentOn = gen
		frames = append(frames, subscribeFrame(topic, c.last[topic]))
	}
	return frames
}

// resendFramesLocked returns every unanswered command not yet sent on
// connection gen, in the order they were first sent, and marks them sent.
func (c *Client) resendFramesLocked(gen uint64) [][]byte {
	cmds := make([]*command, 0, len(c.pending))
	for _, cmd := range c.pending {
		if cmd.sentOn != gen {
			cmds = append(cmds, cmd)
		}
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].order < cmds[j].order })
	frames := make([][]byte, 0, len(cmds))
	for _, cmd := range cmds {
		cmd.sentOn = gen
		frames = append(frames, cmd.frame)
	}
	return frames
}

// writeAll writes frames in order and stops at the first failure, which
// has closed the connection: the rest go out on the next one.
func (c *Client) writeAll(conn *websocket.Conn, frames [][]byte) error {
	for _, f := range frames {
		if err := c.write(conn, f); err != nil {
			return err
		}
	}
	return nil
}

// backoff is the delay before reconnect attempt number attempt (from 0):
// full jitter, uniform between minB and a ceiling that doubles with each
// attempt from 2*minB up to maxB. The jitter spreads the reconnects of
// thousands of clients dropped at once (a node killed, a 1001 on shutdown)
// instead of having them all arrive together. randN(n) returns a number in
// [0, n), like rand.Int64N.
func backoff(minB, maxB time.Duration, attempt int, randN func(int64) int64) time.Duration {
	ceiling := 2 * minB
	for i := 0; i < attempt && ceiling < maxB; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxB)
	if ceiling <= minB {
		return minB
	}
	return minB + time.Duration(randN(int64(ceiling-minB)+1))
}
