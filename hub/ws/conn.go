package ws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/realtime"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// errConnClosing is returned to a replay when its connection is closing.
var errConnClosing = errors.New("connection closing")

// touchInterval bounds session writes: a connection records activity on
// its session at most once a minute, as an API request does.
const touchInterval = time.Minute

// conn is one WebSocket connection. Its reader goroutine reads the
// client's frames and executes them one at a time; its writer alone writes
// to the socket, draining a queue bounded in bytes. The writer runs, on one
// of the server's workers, only while it has work (frames, a ping, the
// close) and returns when it has none, so an idle connection holds a single
// goroutine, blocked in a read.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	sock   *sock // under ws; the writer corks it around each batch
	caller rooms.Caller
	id     string

	// sessMu guards session, which the timer and the reader share.
	sessMu  sync.Mutex
	session rooms.Session

	mu          sync.Mutex
	queue       []realtime.Frame
	queuedBytes int                  // the bytes in queue
	closeCode   websocket.StatusCode // 0 while open; -1 to stop without a close frame
	closeReason string
	// timer is the connection's one timer, set, reset and stopped under
	// mu: it fires at pingAt, when the peer is owed a ping, or at
	// expireAt, when the session times out unless there was activity
	// (zero while a check of the session is due or running), whichever
	// comes first. One timer, not two: every idle connection holds it.
	timer    *time.Timer
	pingAt   time.Time
	expireAt time.Time
	pingDue  bool // the writer owes the peer a ping
	writing  bool // a writer is running; never more than one
	finished bool // the writer has closed the socket; none starts again
	// cancelFrame cancels the context of the frame executing, nil between
	// frames; aborted is set by Abort, so a frame stuck on the store cannot
	// hold a shutdown past its deadline. A normal close cancels nothing: a
	// command runs to its end once started. Each frame has a context of
	// its own, which goes with it, rather than one for the connection: the
	// store's calls leave a context state (its done channel, a map of its
	// children) that an idle connection would otherwise keep.
	cancelFrame context.CancelFunc
	aborted     bool
	space       chan struct{} // the queue has room again
	done        chan struct{} // closed once finished
	// writer is c.writeLoop, made once: a method value allocates its
	// closure each time it is taken, and a writer starts for nearly every
	// delivery to an idle connection.
	writer func()

	// Owned by the reader: frames execute one at a time, each on a
	// worker the reader waits for. A slice, not a map: most connections
	// hold one or two subscriptions, and an idle one should cost little.
	subs     []*realtime.Subscription
	typedAt  map[string]time.Time // made on first use
	refusals int
	bucket   tokenBucket
	// limited counts frames refused as rate limited since the last audit
	// entry for them; limitedAudited is when that entry was written.
	limited        int
	limitedAudited time.Time
	// flood counts rate-limited frames in the second since floodSince.
	flood      int
	floodSince time.Time
}

var _ realtime.Subscriber = (*conn)(nil)

// start registers a connection and starts its reader, then returns so that
// the HTTP handler returns too: the handler's stack, grown by the session
// checks, the request and net/http's state for it are then freed rather
// than held for as long as the socket stays open.
func (s *Server) start(ws *websocket.Conn, sock *sock, caller rooms.Caller, rec rooms.Session) {
	// The connection acts as the user but never needs their secrets.
	caller.User.PasswordHash, caller.User.TOTPSecret, caller.User.TOTPPendingSecret = "", "", ""
	c := &conn{
		s: s, ws: ws, sock: sock, caller: caller, session: connSession(rec), id: strings.Clone(rooms.NewID()[:8]),
		space: make(chan struct{}, 1), done: make(chan struct{}),
		bucket: tokenBucket{rate: s.cfg.CommandRate, burst: float64(s.cfg.CommandBurst)},
	}
	c.writer = c.writeLoop
	// The timer exists before anyone can see the connection: once it is
	// registered, the hub may check its session (a resync after a broker
	// reconnect), which sets the timer for the session's time.
	c.mu.Lock()
	c.pingAt = time.Now().Add(s.cfg.PingInterval)
	c.timer = time.AfterFunc(s.cfg.PingInterval, c.tick)
	c.mu.Unlock()
	err := s.hub.Register(c, s.cfg.SocketsPerSession)
	if err != nil {
		c.mu.Lock()
		c.timer.Stop()
		c.mu.Unlock()
	}
	switch {
	case errors.Is(err, realtime.ErrTooManyConnections):
		s.m.RateLimitedSockets.Inc()
		_ = s.svc.AuditCaller(context.Background(), caller, rooms.ActionExecute, "ws.connect", nil, rooms.OutcomeDenied,
			fmt.Sprintf("session=%s sockets_per_session=%d", rec.ID, s.cfg.SocketsPerSession))
		// An error frame first, so a browser (which cannot see the close
		// reason's cause) can say why.
		// The sock bounds the write; corked, the frame goes out in one
		// system call.
		sock.cork()
		_ = ws.Write(context.Background(), websocket.MessageText, realtime.EncodeFrame(wire.ServerFrame{Type: wire.TypeError,
			Code: string(rooms.CodeRateLimited), Message: fmt.Sprintf("this session already has %d connections open; close a tab or window", s.cfg.SocketsPerSession)}))
		_ = sock.uncork()
		_ = ws.Close(realtime.DisconnectTooManyConns.Code, realtime.DisconnectTooManyConns.Reason)
		return
	case err != nil:
		_ = ws.Close(realtime.DisconnectShutdown.Code, realtime.DisconnectShutdown.Reason)
		return
	}
	_ = s.svc.AuditCaller(context.Background(), caller, rooms.ActionExecute, "ws.connect", nil, rooms.OutcomeSuccess, "session="+rec.ID+" conn="+c.id)
	// The session is read again now that the connection is registered: a
	// session that ended between the upgrade and the registration was
	// ended before EndSessions could find this connection. It also sets
	// when the session times out.
	c.checkSession()
	go c.run()
}

// Caller is who is connected.
func (c *conn) Caller() rooms.Caller { return c.caller }

// run reads the client's frames until the connection ends, waits for the
// writer to close the socket, and lets go of the connection.
//
// What follows the reads is a function of its own: its frame (two audit
// entries, each copying the caller) would otherwise sit under every idle
// read, deepening each idle connection's stack by most of a kilobyte.
func (c *conn) run() {
	c.end(c.readLoop())
}

// end lets go of the connection once its reads have ended with err.
//
//go:noinline
func (c *conn) end(err error) {
	sessionID := c.SessionID()
	defer c.s.hub.Unregister(c, sessionID)
	peer := websocket.CloseStatus(err)
	if c.limited > 0 {
		// Rate-limited frames since the last entry for them.
		_ = c.s.svc.AuditCaller(context.Background(), c.caller, rooms.ActionExecute, "ws.frame", nil, rooms.OutcomeDenied,
			fmt.Sprintf("rate_limited conn=%s count=%d", c.id, c.limited))
	}

	c.closeWith(-1, "")
	<-c.done
	c.mu.Lock()
	c.timer.Stop() // for good: scheduleExpiry and tick see finished
	c.mu.Unlock()
	for _, sub := range c.subs {
		sub.End()
	}
	c.mu.Lock()
	code := c.closeCode
	c.mu.Unlock()
	if code < 0 {
		code = peer // the client closed (or vanished: -1)
	}
	_ = c.s.svc.AuditCaller(context.Background(), c.caller, rooms.ActionExecute, "ws.disconnect", nil, rooms.OutcomeSuccess,
		fmt.Sprintf("session=%s conn=%s code=%d", sessionID, c.id, code))
}

// readLoop executes the client's frames until the connection ends, and
// returns why it ended.
//
// The read is not bound to a context: every way a connection ends (the
// writer's close, a failed ping or write, abort) closes the socket, which
// ends the read. Each frame executes on a worker that the loop waits for,
// so frames still run one at a time, in order, while the deep stacks of
// store calls stay with the workers instead of with the idle reader for
// the life of the connection. A frame
// runs to its end even if the socket closes meanwhile: a command is
// committed or not, never cut short, and an answer nobody reads is
// dropped.
func (c *conn) readLoop() error {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.sock.stop()
			return err
		}
		ctx, cancel := c.frameContext()
		var wg sync.WaitGroup
		wg.Add(1)
		c.s.workers.run(func() {
			defer wg.Done()
			c.frame(ctx, typ, data)
		})
		wg.Wait()
		c.mu.Lock()
		c.cancelFrame = nil
		c.mu.Unlock()
		cancel()
		if c.refusals > maxRefusals {
			c.Close(realtime.DisconnectMisbehaving)
			return nil
		}
	}
}

// frameContext returns the context of the next frame, which Abort cancels.
func (c *conn) frameContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		cancel()
	}
	c.cancelFrame = cancel
	return ctx, cancel
}

// Send queues a frame for the writer without ever blocking: a full queue
// closes the connection with 4008, and the client resumes from its last
// seq. It reports whether the frame was queued. A frame over the protocol's
// limit is never sent (the client could not read it, and would reconnect
// and ask for it forever); it is counted and logged.
func (c *conn) Send(f realtime.Frame) bool {
	if len(f.Data) > wire.MaxFrame {
		c.s.m.DroppedTooLarge.Inc()
		c.s.log.Error().Str("conn", c.id).Int("bytes", len(f.Data)).Msg("frame over the protocol's limit not sent")
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		c.s.m.DroppedClosed.Inc()
		return false
	}
	if c.queuedBytes > 0 && c.queuedBytes+len(f.Data) > c.s.cfg.SendQueueBytes {
		c.s.m.DroppedQueueFull.Inc()
		c.closeLocked(realtime.DisconnectTooSlow.Code, realtime.DisconnectTooSlow.Reason)
		c.s.m.SlowConsumerCloses.Inc()
		return false
	}
	c.queue = append(c.queue, f)
	c.queuedBytes += len(f.Data)
	c.wakeLocked()
	return true
}

// SendWait queues a frame of a replay, waiting for room rather than
// closing the connection: the replay is the client's own request and runs
// on its reader, so waiting slows only this client.
func (c *conn) SendWait(ctx context.Context, f realtime.Frame) error {
	if len(f.Data) > wire.MaxFrame {
		c.Send(f) // counted and logged there
		return nil
	}
	for {
		c.mu.Lock()
		if c.closeCode != 0 {
			c.mu.Unlock()
			return errConnClosing
		}
		if c.queuedBytes == 0 || c.queuedBytes+len(f.Data) <= c.s.cfg.SendQueueBytes {
			c.queue = append(c.queue, f)
			c.queuedBytes += len(f.Data)
			c.wakeLocked()
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		select {
		case <-c.space:
		case <-c.done:
			return errConnClosing
		case <-ctx.Done():
			return errConnClosing
		}
	}
}

// Close closes the connection with d once the writer gets to it: after the
// queued frames for 1001 (a drain), at once for the others. A session that
// ended gets nothing more.
func (c *conn) Close(d realtime.Disconnect) { c.closeWith(d.Code, d.Reason) }

func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *conn) closeLocked(code websocket.StatusCode, reason string) {
	if c.closeCode != 0 {
		return
	}
	c.closeCode, c.closeReason = code, reason
	if code != wire.CloseGoingAway {
		c.queue, c.queuedBytes = nil, 0
	}
	if code == wire.CloseSessionEnded {
		c.s.m.SessionCloses.Inc()
	}
	signal(c.space) // a replay waiting for room sees the close at once
	c.wakeLocked()
}

// Abort drops the connection without a close handshake and cancels the
// frame it is executing (the shutdown deadline passed).
func (c *conn) Abort() {
	c.mu.Lock()
	c.aborted = true
	if c.cancelFrame != nil {
		c.cancelFrame()
	}
	c.mu.Unlock()
	_ = c.ws.CloseNow()
}

// wakeLocked starts a writer unless one is running or the socket is
// closed. A writer that finds nothing to do returns under mu, so work
// queued under mu is always seen by a writer.
func (c *conn) wakeLocked() {
	if c.writing || c.finished {
		return
	}
	c.writing = true
	c.s.workers.run(c.writer)
}

// tick runs on the timer's goroutine. When a ping is due it asks for one
// and starts the writer unless it is running; when the session's time is
// up it reads the session again, which closes the connection or sets a
// later time. The writer starts first: the read may take a while, and
// must not hold up the ping or the frames queued meanwhile.
func (c *conn) tick() {
	now := time.Now()
	c.mu.Lock()
	if c.closeCode != 0 || c.finished {
		c.mu.Unlock()
		return
	}
	expired := !c.expireAt.IsZero() && !now.Before(c.expireAt)
	if expired {
		c.expireAt = time.Time{} // checkSession sets it again
	}
	write := false
	if !now.Before(c.pingAt) {
		c.pingDue = true
		c.pingAt = now.Add(c.s.cfg.PingInterval)
		if !c.writing {
			c.writing, write = true, true
		}
	}
	c.armLocked(now)
	c.mu.Unlock()
	if write {
		c.s.workers.run(c.writer)
	}
	if expired {
		c.checkSession()
	}
}

// armLocked sets the timer for the first of the next ping and the
// session's time.
func (c *conn) armLocked(now time.Time) {
	at := c.pingAt
	if !c.expireAt.IsZero() && c.expireAt.Before(at) {
		at = c.expireAt
	}
	c.timer.Reset(at.Sub(now))
}

// writeLoop is the connection's only writer: frames, pings and the close.
// It returns when it has nothing to do, and wakeLocked or tick starts
// it again. The writer that closes the socket marks the connection
// finished, so no writer runs after the close.
func (c *conn) writeLoop() {
	var batch []realtime.Frame
	for {
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.queuedBytes = 0
		code, reason, ping := c.closeCode, c.closeReason, c.pingDue
		c.pingDue = false
		if len(batch) == 0 && code == 0 && !ping {
			// Idle: no goroutine and no buffer. The next frame allocates
			// the queue again, a few dozen bytes, while idle connections,
			// nearly all of them, each keep none.
			c.queue = nil
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if len(batch) > 0 {
			signal(c.space)
			if err := c.writeBatch(batch); err != nil {
				c.finish(true)
				return
			}
		}
		clear(batch)
		if cap(batch) > 64 {
			// Let a burst's buffer go.
			batch = nil
		}
		if code != 0 {
			if code == wire.CloseGoingAway && c.queued() > 0 {
				continue
			}
			if code < 0 {
				c.finish(true)
			} else {
				_ = c.ws.Close(code, reason)
				c.finish(false)
			}
			return
		}
		if ping {
			ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.PingInterval)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.finish(true) // the peer is gone, or too slow to answer
				return
			}
		}
	}
}

// finish ends the writer for good: the socket is closed (now, when
// closeNow) and nothing more is queued or written.
func (c *conn) finish(closeNow bool) {
	if closeNow {
		_ = c.ws.CloseNow()
	}
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeCode = -1
	}
	c.writing, c.finished, c.queue, c.queuedBytes = false, true, nil, 0
	c.mu.Unlock()
	close(c.done)
}

// writeBatch writes the frames drained from the queue with the sock
// corked, so that they reach the socket together, in one system call for
// every corkFlush bytes, and counts the events delivered once they have.
// A close without a drain cuts the batch short.
func (c *conn) writeBatch(batch []realtime.Frame) error {
	c.sock.cork()
	var err error
	written := batch
	for i, f := range batch {
		if i%64 == 63 && c.stopping() {
			written = batch[:i]
			break
		}
		if err = c.sock.writeText(f.Data); err != nil {
			break
		}
	}
	// Always uncorked, even after a failed write: a pong or the close
	// must not wait in the buffer, and the buffer goes back to the pool.
	if uerr := c.sock.uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	now := time.Now()
	for _, f := range written {
		if !f.Event {
			continue
		}
		c.s.m.EventsDelivered.Inc()
		if !f.At.IsZero() {
			if d := now.Sub(f.At); d >= 0 && d < time.Hour {
				c.s.m.DeliveryLatency.Observe(d.Seconds())
			}
		}
	}
	return nil
}

// closing reports whether the connection is closing or closed.
func (c *conn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// stopping reports whether the connection is closing without a drain.
func (c *conn) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0 && c.closeCode != wire.CloseGoingAway
}

func (c *conn) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// SessionID names the connection's session.
func (c *conn) SessionID() string {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.session.ID
}

// touch checks the session is live and, for the user's activity, records
// it as an API request does, at most once per touchInterval. It reports
// false, and closes the connection, when the session has ended or timed
// out: the frame is then not executed.
func (c *conn) touch(ctx context.Context, activity bool) bool {
	now := c.s.clock.Now()
	c.sessMu.Lock()
	rec := c.session
	c.sessMu.Unlock()
	if c.s.auth.Expired(rec, now) {
		// Activity elsewhere (the browser's API calls, another node) may
		// have kept it alive; the store decides.
		if !c.checkSession() {
			return false
		}
		c.sessMu.Lock()
		rec = c.session
		c.sessMu.Unlock()
	}
	if !activity || now.Sub(rec.LastSeenAt) < touchInterval {
		return true
	}
	alive, err := c.s.auth.Touch(ctx, rec, now)
	if err != nil {
		return true // the session was live a moment ago; try again on the next frame
	}
	if !alive {
		c.Close(realtime.DisconnectSessionEnded)
		return false
	}
	c.sessMu.Lock()
	c.session.LastSeenAt = now.Truncate(time.Microsecond)
	c.sessMu.Unlock()
	return true
}

// scheduleExpiry sets the time at which the connection's session times
// out (idle or absolute). Then the session is read again, since activity
// elsewhere (the browser's API calls, another node) may have extended it.
func (c *conn) scheduleExpiry() {
	c.sessMu.Lock()
	rec := c.session
	c.sessMu.Unlock()
	wait := max(c.s.auth.Deadline(rec).Sub(c.s.clock.Now()), time.Second)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return // the connection is over; end has stopped the timer
	}
	c.expireAt = now.Add(wait)
	c.armLocked(now)
}

// CheckSession reads the connection's session again and closes the
// connection with 4001 if it has ended or timed out.
func (c *conn) CheckSession() { c.checkSession() }

// checkSession is CheckSession, also rearming the expiry timer of a live
// session and reporting whether it is alive.
func (c *conn) checkSession() bool {
	if c.closing() {
		return false
	}
	c.sessMu.Lock()
	hash := c.session.TokenHash
	c.sessMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := c.s.auth.Lookup(ctx, hash)
	switch {
	case errors.Is(err, rooms.ErrNotFound) || (err == nil && c.s.auth.Expired(rec, c.s.clock.Now())):
		c.Close(realtime.DisconnectSessionEnded)
		return false
	case err == nil:
		c.sessMu.Lock()
		c.session = connSession(rec)
		c.sessMu.Unlock()
	}
	c.scheduleExpiry()
	return true
}

// connSession is what a connection keeps of its session: what identifies
// it and what decides when it times out.
func connSession(rec rooms.Session) rooms.Session {
	return rooms.Session{ID: rec.ID, TokenHash: rec.TokenHash, UserID: rec.UserID, CreatedAt: rec.CreatedAt, LastSeenAt: rec.LastSeenAt}
}

// signal wakes whoever waits on ch, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tokenBucket limits a connection's frames: rate a second, up to burst at
// once. Owned by the reader.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// take reports whether a frame may go ahead at now.
func (b *tokenBucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
