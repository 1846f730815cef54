// Package ws is the WebSocket transport of SPEC §6: the upgrade of GET /ws,
// one connection's reader and writer with its bounded send queue, its rate
// limits, and the dispatch of client frames to the room service and the
// real-time hub. It knows no kind of topic: subscriptions go through the
// hub's feeds.
package ws

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"patientpass/hub/httpjson"
	"patientpass/hub/metrics"
	"patientpass/hub/realtime"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// Config tunes the transport. Zero values take the defaults.
type Config struct {
	// SendQueueBytes bounds the bytes of frames waiting for a connection's
	// writer; past it the connection is closed with 4008 and the client
	// resumes (default 1 MiB: a replay page of large plan edits fits).
	SendQueueBytes int
	// WriteTimeout bounds every write to a socket (default 10s).
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged; a ping
	// unanswered for another PingInterval closes it (default 25s).
	PingInterval time.Duration
	// CommandRate and CommandBurst bound the frames one connection may send:
	// a sustained rate per second and a burst (defaults 50 and 100: a
	// person types far slower, and a client re-sending its unanswered
	// commands after a reconnect mostly fits in the burst; the Go client
	// sends a refused command again after a pause).
	CommandRate  float64
	CommandBurst int
	// SocketsPerSession bounds the connections one session may hold on a
	// node (default 16: a few tabs, each reconnecting).
	SocketsPerSession int
}

func (c *Config) defaults() {
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.CommandRate <= 0 {
		c.CommandRate = 50
	}
	if c.CommandBurst <= 0 {
		c.CommandBurst = 100
	}
	if c.SocketsPerSession <= 0 {
		c.SocketsPerSession = 16
	}
}

const (
	// maxSubscriptions bounds the topics one connection may hold.
	maxSubscriptions = 200
	// maxRefusals is how many refused frames a connection may send before
	// it is closed as misbehaving (1008).
	maxRefusals = 50
	// typingInterval is the least time between two typing indicators from
	// one connection for one room; more are dropped.
	typingInterval = time.Second
	// readBuffer and writeBuffer size a socket's buffers, which it keeps for
	// as long as it is open. net/http's are 4 KiB each, ten times the frames
	// this protocol usually carries (a few hundred bytes). The read buffer
	// holds a frame's header and the start of its payload; the rest of a
	// longer frame is read straight into the message, past the buffer, in
	// one more system call. A client sends a frame a second or so at most,
	// while every idle connection keeps its buffer. The writer's frames
	// do not pass through coder/websocket (sock.writeText), so the write
	// buffer need only hold a whole control frame (a 2-byte header and at
	// most 125 bytes): a pong, ping or close then reaches the sock in one
	// Write, which writeText relies on, and goes out in one system call
	// while the sock is not corked.
	readBuffer  = 128
	writeBuffer = 128
	// handshakeTimeout bounds the upgrade: the 101 response written and
	// flushed. The request itself is bounded by the server's read timeouts.
	handshakeTimeout = 10 * time.Second
)

// Auth is what the transport needs of authentication: the session a
// request carries and whether it is still alive.
type Auth interface {
	// Required resolves the request's session to an active user, or
	// answers 401 itself.
	Required(h func(w http.ResponseWriter, r *http.Request, c rooms.Caller)) http.Handler
	// Current returns the session Required resolved for r.
	Current(r *http.Request) (rooms.Session, bool)
	// Identify names the user a request's cookie belongs to, without
	// touching the session, for auditing a refusal.
	Identify(r *http.Request) (rooms.Caller, bool)
	// Lookup reads a session by its token hash; rooms.ErrNotFound when it
	// has ended.
	Lookup(ctx context.Context, tokenHash string) (rooms.Session, error)
	// Expired reports whether rec has timed out at now.
	Expired(rec rooms.Session, now time.Time) bool
	// Deadline is when rec times out, unless there is activity.
	Deadline(rec rooms.Session) time.Time
	// Touch records activity on rec; false when it has ended.
	Touch(ctx context.Context, rec rooms.Session, now time.Time) (bool, error)
}

// Server serves GET /ws.
type Server struct {
	svc    *rooms.Service
	hub    *realtime.Hub
	auth   Auth
	clock  rooms.Clock
	log    zerolog.Logger
	m      *metrics.Metrics
	cfg    Config
	origin string // the public URL's origin, which every upgrade must send
	// workers run the connections' writers and frames.
	workers *workers
}

// NewServer returns the transport. origin is the public URL's origin.
func NewServer(svc *rooms.Service, hub *realtime.Hub, auth Auth, clock rooms.Clock, log zerolog.Logger, m *metrics.Metrics, origin string, cfg Config) *Server {
	cfg.defaults()
	return &Server{svc: svc, hub: hub, auth: auth, clock: clock, log: log, m: m, cfg: cfg, origin: origin, workers: newWorkers(workerIdle)}
}

// ServeHTTP upgrades GET /ws. The Origin must be the public URL exactly (a
// page elsewhere must not borrow the user's cookie), then the session is
// checked as for any API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hub.Accepting() {
		httpjson.Error(w, &rooms.Error{Code: rooms.CodeUnavailable, Message: "this server is shutting down; reconnect"})
		return
	}
	if origin := r.Header.Get("Origin"); origin != s.origin {
		s.refuseOrigin(w, r, origin)
		return
	}
	s.auth.Required(s.accept).ServeHTTP(w, r)
}

// refuseOrigin answers 403 to an upgrade from a foreign origin, and audits
// it: against the user when the request carries their live session, since
// that is what a cross-site WebSocket hijack looks like.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request, origin string) {
	c, ok := s.auth.Identify(r)
	if !ok {
		c = rooms.Caller{ClientAddr: httpjson.ClientAddr(r)}
	}
	_ = s.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "ws.connect", nil, rooms.OutcomeDenied,
		"origin="+httpjson.Printable(origin, 200))
	httpjson.Error(w, rooms.Forbidden("WebSocket connections are only accepted from %s", s.origin))
}

func (s *Server) accept(w http.ResponseWriter, r *http.Request, caller rooms.Caller) {
	rec, ok := s.auth.Current(r)
	if !ok {
		httpjson.Error(w, &rooms.Error{Code: rooms.CodeUnauthenticated, Message: "please log in"})
		return
	}
	// The handshake's writes must not hang on a client that stops reading.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(handshakeTimeout))
	hj := &smallBuffers{ResponseWriter: w, timeout: s.cfg.WriteTimeout}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		// The Origin was checked above, against the public URL rather than
		// the Host header a proxy may rewrite.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered
	}
	ws.SetReadLimit(wire.MaxFrame)
	s.start(ws, hj.sock, caller, rec)
}

// smallBuffers hijacks the connection for websocket.Accept with buffers of
// readBuffer and writeBuffer bytes in place of net/http's, which are freed
// once the handler returns, and hands it the connection as a sock, which
// the connection's writer corks.
type smallBuffers struct {
	http.ResponseWriter
	timeout time.Duration // the sock's write timeout
	sock    *sock         // set by Hijack
}

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	// The server's read and write deadlines (header, body, handshake)
	// stay on a hijacked connection: a socket lives on without them.
	_ = nc.SetDeadline(time.Time{})
	// Whatever the client sent after its handshake is already in
	// net/http's reader. Accept expects it in the reader's buffer, so the
	// new reader starts holding it (and Accept reads through a reader of
	// its own over those bytes and the socket, whatever came early).
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc), max(readBuffer, len(early)))
	if _, err := br.Peek(len(early)); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	w.sock = &sock{Conn: nc, timeout: w.timeout}
	return w.sock, bufio.NewReadWriter(br, bufio.NewWriterSize(w.sock, writeBuffer)), nil
}
