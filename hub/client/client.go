// Package client speaks the Patient Pass WebSocket protocol (SPEC §6) from
// Go. The integration tests use it to drive real nodes, and the load tool
// runs thousands of clients in one process with it, so a client is cheap: one
// goroutine per client (a second one lives only while a new connection is
// being resumed), no timers while idle, and no buffers that grow without
// bound.
//
// A client keeps itself connected: after a drop it reconnects with jittered
// backoff, resubscribes every topic from the last seq it saw, and re-sends
// every command still waiting for an answer under its original ref, which the
// server applies once. It never hides what the server does wrong: duplicated
// and missing seqs are counted in Stats and every event still reaches OnEvent.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/wire"
)

const (
	// writeTimeout bounds every write, so a connection the server stopped
	// reading is closed and replaced rather than blocking callers forever.
	writeTimeout = 10 * time.Second
	// dialTimeout bounds each reconnect attempt (and the first dial, on top
	// of the caller's context) so a handshake that hangs becomes a retry.
	dialTimeout = 10 * time.Second
	// readLimit leaves room above wire.MaxFrame for the envelope the server
	// wraps around a maximal event.
	readLimit = wire.MaxFrame + 1024
)

// Options configure a Client. Only URL is required.
type Options struct {
	// URL is the WebSocket endpoint, "ws://host:port/ws". A server's base
	// URL, "http(s)://host:port", is accepted too and means its /ws path.
	URL string
	// Origin is sent as the Origin header; the server refuses any Origin
	// other than its public URL. Empty means the scheme and host of URL
	// (http or https), which is right when URL is the public URL.
	Origin string
	// Header holds extra request headers for the handshake, such as Cookie.
	Header http.Header
	// Cookies are added to the handshake request's Cookie header.
	Cookies []*http.Cookie
	// HTTPClient performs the handshake; nil means http.DefaultClient.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the delay before each reconnect
	// attempt; they default to 100ms and 5s. See backoff for the schedule.
	MinBackoff, MaxBackoff time.Duration
	// OnEvent receives every event frame, in arrival order, including
	// duplicates, frames after a gap and events for topics the client is
	// not subscribed to. It runs on the client's read goroutine, so while
	// it runs nothing else is read: it must return quickly.
	OnEvent func(Event)
	// OnFrame receives every other frame that no waiting call claims:
	// presence, typing, snapshot and update frames, error frames that
	// answer no waiting Subscribe or Send, acks of commands whose Send gave
	// up, and the subscribed frames that answer resubscriptions after a
	// reconnect. It runs on the read goroutine, like OnEvent.
	OnFrame func(wire.ServerFrame)
	// OnState is called on the read goroutine after each connect and each
	// disconnect, including the last one.
	OnState func(State)
}

// Event is one event frame as the client received it.
type Event struct {
	Topic string
	Seq   int64
	// Event is the stored event as the REST API shows it.
	Event json.RawMessage
	// Received is when the frame was read, for measuring delivery latency.
	Received time.Time
}

// State describes the connection after a connect or a disconnect.
type State struct {
	Connected bool
	// CloseCode is the close code of a disconnect as websocket.CloseStatus
	// reports it, or -1 when there was no close frame (or on connect).
	CloseCode int
	// Err is why the connection ended; nil on connect.
	Err error
	// Reconnects counts the successful reconnects so far.
	Reconnects int
}

// Ack is the server's confirmation that a command is committed.
type Ack struct {
	Ref      string
	Referral string
	// Seq is the seq of the event the command produced.
	Seq int64
}

// Stats count what the client received. The load tool and the tests read
// them to detect server bugs, so nothing here is ever smoothed over.
type Stats struct {
	// Events counts every event frame.
	Events int64
	// Duplicates counts events whose seq was not above the last seq seen
	// for their topic.
	Duplicates int64
	// Gaps counts events whose seq skipped at least one seq after the last
	// one seen for their topic.
	Gaps int64
	// Reconnects counts successful reconnects (the first connection is not
	// one).
	Reconnects int64
	// Malformed counts frames that were not JSON server frames.
	Malformed int64
}

var (
	// ErrClosed is returned by calls made after Close, and by calls that
	// were waiting when Close was called.
	ErrClosed = errors.New("client is closed")
	// ErrNotConnected is returned by Typing and Read while the client is
	// between connections: those frames are not worth replaying.
	ErrNotConnected = errors.New("client is not connected")
)

// Client is one user's connection to a Patient Pass node, kept alive across
// drops. Its methods are safe for concurrent use.
type Client struct {
	opts     Options // defaults applied; read-only after newClient
	url      string
	dialOpts websocket.DialOptions // read-only after newClient

	// ctx lives as long as the client. Close and a permanent refusal cancel
	// it, which ends the reconnect loop and wakes every waiting call.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed by run when it returns

	// wmu orders subscribe and unsubscribe frames with the resubscription
	// of a new connection, so that a topic is subscribed at most once per
	// connection and an unsubscribe never overtakes its subscribe. It is
	// taken before mu, and never by the read goroutine, so reading goes on
	// while a write under wmu is blocked.
	wmu sync.Mutex

	mu sync.Mutex
	// conn is the live connection, nil between connections; guarded by mu.
	conn *websocket.Conn
	// gen numbers connections so each subscription and command knows
	// whether it has gone out on the current one; guarded by mu.
	gen     uint64
	subs    map[string]*subscription // guarded by mu
	last    map[string]int64         // highest seq seen per topic; guarded by mu
	pending map[string]*command      // unanswered commands by ref; guarded by mu
	order   uint64                   // numbers commands so they are re-sent in order; guarded by mu
	stats   Stats                    // guarded by mu
	stopped bool                     // guarded by mu
	err     error                    // why the client stopped, nil after Close; guarded by mu
}

// Dial connects to a node and returns a client that keeps itself connected
// until Close. The first connection must succeed: a refused handshake
// returns a *HandshakeError (401 without a session, 403 for a wrong Origin),
// anything else the dial error. ctx bounds only this first connection;
// cancelling it later has no effect on the client.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	conn, err := c.dial(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	gen, ok := c.install(conn, false)
	if !ok {
		// Unreachable while nobody else holds c, but cheap to handle.
		_ = conn.CloseNow()
		return nil, ErrClosed
	}
	go c.run(conn, gen)
	return c, nil
}

// newClient builds a client without connecting it.
func newClient(opts Options) (*Client, error) {
	u, err := webSocketURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Origin == "" {
		opts.Origin = originOf(u)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	header := opts.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Origin", opts.Origin)
	// http.Request.AddCookie merges every cookie into one Cookie header, as
	// a browser does, and skips invalid names.
	req := &http.Request{Header: header}
	for _, ck := range opts.Cookies {
		req.AddCookie(ck)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		opts:     opts,
		url:      u,
		dialOpts: websocket.DialOptions{HTTPClient: opts.HTTPClient, HTTPHeader: header},
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		subs:     make(map[string]*subscription),
		last:     make(map[string]int64),
		pending:  make(map[string]*command),
	}, nil
}

// LastSeq is the highest seq received for topic, or the after of its
// subscription when nothing newer has arrived.
func (c *Client) LastSeq(topic string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[topic]
}

// Stats returns the counts so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Done is closed when the client has stopped for good (Close, close code
// 4001 or 4003, or a 401/403 handshake on reconnect) and its read goroutine
// has returned, so no callback runs after it is closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the client stopped: nil while it runs and after Close; for
// close codes 4001 and 4003 an error that websocket.CloseStatus reads the
// code from; for a refused reconnect a *HandshakeError.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection with 1000, stops reconnecting and fails every
// waiting call with ErrClosed. It returns once the close handshake is done
// (at most about 10s against a server that does not answer); callbacks may
// still be running until Done is closed. It may be called from a callback.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	conn := c.conn
	c.mu.Unlock()
	c.cancel()
	if conn == nil {
		return nil
	}
	// The read goroutine reads with a background context, so cancelling
	// c.ctx above leaves the connection open for this handshake.
	err := conn.Close(websocket.StatusNormalClosure, "")
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close connection: %w", err)
	}
	return nil
}

// Drop cuts the current connection without a close handshake, as a network
// failure would; the client then reconnects and resumes as after any drop.
// The load tool uses it for reconnect storms. Between connections it does
// nothing.
func (c *Client) Drop() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.CloseNow()
	}
}

// stop ends the client for a reason the server gave; later calls fail with
// err and Err reports it.
func (c *Client) stop(err error) {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		c.err = err
	}
	c.mu.Unlock()
	c.cancel()
}

// stopErrLocked is what calls fail with once the client has stopped.
func (c *Client) stopErrLocked() error {
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}

// stopErr is stopErrLocked for callers that do not hold mu.
func (c *Client) stopErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErrLocked()
}

// write sends one frame on conn. A failed write leaves the connection in an
// unknown state, so it is closed: the read goroutine then sees the drop and
// reconnects, and whatever was waiting is re-sent on the next connection.
func (c *Client) write(conn *websocket.Conn, data []byte) error {
	// Not the caller's context: coder/websocket closes the whole connection
	// when a write's context ends, and a caller giving up must not cost
	// every other caller the connection.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := conn.Write(ctx, websocket.MessageText, data)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = conn.CloseNow()
	}
	return err
}

// notify reports a connection state to OnState.
func (c *Client) notify(s State) {
	if c.opts.OnState != nil {
		c.opts.OnState(s)
	}
}
