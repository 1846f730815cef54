package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/wire"
	"patientpass/rooms"
)

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
	// this protocol usually carries (a few hundred bytes); a longer frame is
	// read or written past the buffer, in one more system call.
	readBuffer  = 512
	writeBuffer = 1024
)

// outFrame is a frame waiting for a connection's writer. at is the commit
// time of a live event, for the delivery latency histogram.
type outFrame struct {
	data  []byte
	event bool
	at    time.Time
}

// errConnClosing is returned to a replay when its connection is closing.
var errConnClosing = errors.New("connection closing")

// conn is one WebSocket connection. Its reader goroutine reads the
// client's frames and executes them one at a time; its writer alone writes
// to the socket, draining a bounded queue. The writer runs only while it
// has work (frames, a ping, the close) and returns when it has none, so an
// idle connection holds a single goroutine, blocked in a read.
type conn struct {
	h      *realtime
	ws     *websocket.Conn
	caller rooms.Caller
	id     string

	// sessMu guards session and expiry, which the expiry timer and the
	// reader share.
	sessMu  sync.Mutex
	session rooms.Session
	expiry  *time.Timer

	mu          sync.Mutex
	queue       []outFrame
	closeCode   websocket.StatusCode // 0 while open; -1 to stop without a close frame
	closeReason string
	pinger      *time.Timer   // asks for a ping every PingInterval; set, reset and stopped under mu
	pingDue     bool          // the writer owes the peer a ping
	writing     bool          // a writer goroutine is running; never more than one
	finished    bool          // the writer has closed the socket; none starts again
	space       chan struct{} // the queue has room again
	done        chan struct{} // closed once finished

	// Owned by the reader: frames execute one at a time, each on a
	// goroutine the reader waits for. A slice, not a map: most connections
	// hold one or two subscriptions, and an idle one should cost little.
	subs     []*subscription
	typedAt  map[string]time.Time // made on first use
	refusals int
}

// serveWS upgrades GET /ws. The Origin must be the public URL exactly (a
// page elsewhere must not borrow the user's cookie), then the session is
// checked as for any API request.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.rt.accepting() {
		writeError(w, &rooms.Error{Code: rooms.CodeUnavailable, Message: "this server is shutting down; reconnect"})
		return
	}
	if origin := r.Header.Get("Origin"); origin != s.origin {
		s.refuseOrigin(w, r, origin)
		return
	}
	s.authed(s.acceptWS).ServeHTTP(w, r)
}

// refuseOrigin answers 403 to an upgrade from a foreign origin. When the
// request carries a live session, the attempt is audited against that user:
// it is what a cross-site WebSocket hijack looks like.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request, origin string) {
	if sess, err := s.sessions.Get(r, s.sessions.name); err == nil {
		if rec, ok := sess.Values[valueRecord].(rooms.Session); ok {
			if u, err := s.store.User(r.Context(), rec.UserID); err == nil {
				c := rooms.Caller{User: u, ClientAddr: clientAddr(r)}
				_ = s.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "ws.connect", nil, rooms.OutcomeDenied,
					"origin="+printable(origin, 200))
			}
		}
	}
	writeError(w, rooms.Forbidden("WebSocket connections are only accepted from %s", s.origin))
}

func (s *Server) acceptWS(w http.ResponseWriter, r *http.Request, caller rooms.Caller) {
	_, rec, ok := s.sessions.current(r)
	if !ok {
		writeError(w, unauthenticated)
		return
	}
	ws, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{
		// The Origin was checked above, against the public URL rather than
		// the Host header a proxy may rewrite.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered
	}
	ws.SetReadLimit(wire.MaxFrame)
	s.rt.start(ws, caller, rec)
}

// smallBuffers hijacks the connection for websocket.Accept with buffers of
// readBuffer and writeBuffer bytes in place of net/http's, which are freed
// once the handler returns.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	// Whatever the client sent after its handshake is already in
	// net/http's reader. Accept expects it in the reader's buffer, so the
	// new reader starts holding it.
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc), max(readBuffer, len(early)))
	if _, err := br.Peek(len(early)); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, writeBuffer)), nil
}

// start registers a connection and starts its reader, then returns so that
// the HTTP handler returns too: the handler's stack, grown by the session
// checks, the request and net/http's state for it are then freed rather
// than held for as long as the socket stays open.
func (h *realtime) start(ws *websocket.Conn, caller rooms.Caller, rec rooms.Session) {
	// The connection acts as the user but never needs their secrets.
	caller.User.PasswordHash, caller.User.TOTPSecret, caller.User.TOTPPendingSecret = "", "", ""
	c := &conn{
		h: h, ws: ws, caller: caller, session: connSession(rec), id: rooms.NewID()[:8],
		space: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if !h.register(c) {
		_ = ws.Close(wire.CloseGoingAway, "server shutting down")
		return
	}
	_ = h.svc.AuditCaller(context.Background(), caller, rooms.ActionExecute, "ws.connect", nil, rooms.OutcomeSuccess, "session="+rec.ID+" conn="+c.id)
	c.scheduleExpiry()
	c.mu.Lock()
	c.pinger = time.AfterFunc(h.cfg.PingInterval, c.pingTick)
	c.mu.Unlock()
	go c.run()
}

// run reads the client's frames until the connection ends, waits for the
// writer to close the socket, and lets go of the connection.
func (c *conn) run() {
	defer c.h.unregister(c)
	peer := websocket.CloseStatus(c.readLoop())

	c.closeWith(-1, "")
	<-c.done
	c.sessMu.Lock()
	if c.expiry != nil { // nil when the socket closed before it was armed
		c.expiry.Stop() // for good: scheduleExpiry sees done closed
	}
	c.sessMu.Unlock()
	c.mu.Lock()
	c.pinger.Stop()
	c.mu.Unlock()
	for _, sub := range c.subs {
		sub.t.remove(c)
	}
	c.mu.Lock()
	code := c.closeCode
	c.mu.Unlock()
	if code < 0 {
		code = peer // the client closed (or vanished: -1)
	}
	c.sessMu.Lock()
	sessionID := c.session.ID
	c.sessMu.Unlock()
	_ = c.h.svc.AuditCaller(context.Background(), c.caller, rooms.ActionExecute, "ws.disconnect", nil, rooms.OutcomeSuccess,
		fmt.Sprintf("session=%s conn=%s code=%d", sessionID, c.id, code))
}

// readLoop executes the client's frames until the connection ends, and
// returns why it ended.
//
// The read is not bound to a context: every way a connection ends (the
// writer's close, a failed ping or write, abort) closes the socket, which
// ends the read. Each frame executes on a goroutine of its own that the
// loop waits for, so frames still run one at a time, in order, while the
// deep stacks of store calls are freed with that goroutine instead of
// staying with the idle reader for the life of the connection. A frame
// runs to its end even if the socket closes meanwhile: a command is
// committed or not, never cut short, and an answer nobody reads is
// dropped.
func (c *conn) readLoop() error {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		wg.Go(func() { c.frame(context.Background(), typ, data) })
		wg.Wait()
		if c.refusals > maxRefusals {
			c.closeWith(websocket.StatusPolicyViolation, "too many refused frames")
			return nil
		}
	}
}

// frame decodes and executes one frame, or refuses it.
func (c *conn) frame(ctx context.Context, typ websocket.MessageType, data []byte) {
	if typ != websocket.MessageText {
		c.refuse(ctx, wire.ServerFrame{Code: string(rooms.CodeInvalid), Message: "frames must be text (JSON)"}, "binary")
		return
	}
	f, err := wire.DecodeClientFrame(data)
	if err != nil {
		var fe *wire.FrameError
		errors.As(err, &fe)
		c.refuse(ctx, wire.ServerFrame{Ref: fe.Ref, Code: fe.Code, Message: fe.Message, Field: fe.Field}, "field="+fe.Field)
		return
	}
	c.handle(ctx, f)
}

// handle executes one frame. Every frame that names a referral is
// authorised by the service, which audits a refusal. Every frame needs a
// live session; those the user makes (not the subscriptions a client
// renews by itself after reconnecting) count as activity on it.
func (c *conn) handle(ctx context.Context, f wire.ClientFrame) {
	activity := f.Type != wire.TypeSubscribe && f.Type != wire.TypeUnsubscribe
	if !c.touch(ctx, activity) {
		return
	}
	switch f.Type {
	case wire.TypeSubscribe:
		c.subscribe(ctx, f)
	case wire.TypeUnsubscribe:
		sub := c.unsubscribe(f.Topic)
		if sub == nil {
			c.refuse(ctx, wire.ServerFrame{Topic: f.Topic, Code: string(rooms.CodeInvalid), Field: "topic", Message: "you are not subscribed to " + f.Topic}, "unsubscribe")
			return
		}
		sub.t.remove(c)
	case wire.TypeMessage:
		e, err := c.h.svc.PostMessage(ctx, c.caller, rooms.PostMessage{Ref: f.Ref, ReferralID: f.Referral, Body: f.Body})
		c.answer(ctx, f, e, err)
	case wire.TypePlanEdit:
		e, err := c.h.svc.EditPlan(ctx, c.caller, rooms.EditPlan{
			Ref: f.Ref, ReferralID: f.Referral, Section: f.Section, BaseRevision: *f.BaseRevision, Text: *f.Text,
		})
		c.answer(ctx, f, e, err)
	case wire.TypeTransition:
		e, err := c.h.svc.Transition(ctx, c.caller, rooms.Transition{
			Ref: f.Ref, ReferralID: f.Referral, To: rooms.Status(f.To), Reason: f.Reason, Outcome: f.Outcome,
		})
		c.answer(ctx, f, e, err)
	case wire.TypeTyping:
		c.typing(ctx, f.Referral)
	case wire.TypeRead:
		if err := c.h.svc.MarkRead(ctx, c.caller, f.Referral, *f.Seq); err != nil {
			c.refuseErr(ctx, f, err)
		}
	}
}

// subscribe authorises a subscription, replays what the client missed and
// makes it live. Only referral topics exist so far.
func (c *conn) subscribe(ctx context.Context, f wire.ClientFrame) {
	refuse := func(code rooms.Code, field, msg string) {
		c.refuse(ctx, wire.ServerFrame{Topic: f.Topic, Code: string(code), Field: field, Message: msg}, "subscribe")
	}
	referralID, ok := strings.CutPrefix(f.Topic, "referral:")
	if !ok || referralID == "" {
		refuse(rooms.CodeInvalid, "topic", fmt.Sprintf("%q is not a topic; subscribe to referral:ID", printable(f.Topic, 100)))
		return
	}
	if c.subscription(f.Topic) != nil {
		refuse(rooms.CodeConflict, "topic", "you are already subscribed to "+f.Topic)
		return
	}
	if len(c.subs) >= maxSubscriptions {
		refuse(rooms.CodeInvalid, "topic", fmt.Sprintf("a connection may hold at most %d subscriptions", maxSubscriptions))
		return
	}
	var after int64
	if f.After != nil {
		after = *f.After
	}
	if _, err := c.h.svc.Subscribe(ctx, c.caller, referralID, after); err != nil {
		c.refuseErr(ctx, f, err)
		return
	}
	t, sub := c.h.join(c, f.Topic, referralID, after)
	c.subs = append(c.subs, sub)
	if err := t.catchUp(ctx, sub); err != nil {
		c.unsubscribe(f.Topic)
		t.remove(c)
		if !errors.Is(err, errConnClosing) && !c.closing() {
			c.h.log.Error().Err(err).Str("conn", c.id).Msg("replay for a subscription failed")
			refuse(rooms.CodeInternal, "", "the room could not be loaded; try again")
		}
	}
}

// subscription returns c's subscription to topic, or nil.
func (c *conn) subscription(topic string) *subscription {
	for _, sub := range c.subs {
		if sub.t.name == topic {
			return sub
		}
	}
	return nil
}

// unsubscribe forgets c's subscription to topic and returns it, or nil.
func (c *conn) unsubscribe(topic string) *subscription {
	i := slices.IndexFunc(c.subs, func(sub *subscription) bool { return sub.t.name == topic })
	if i < 0 {
		return nil
	}
	sub := c.subs[i]
	c.subs = slices.Delete(c.subs, i, i+1)
	return sub
}

// typing passes a typing indicator to the room, at most once a second per
// room. The user must be able to see the referral: a subscription shows
// they were authorised; otherwise the service is asked.
func (c *conn) typing(ctx context.Context, referralID string) {
	now := time.Now()
	if now.Sub(c.typedAt[referralID]) < typingInterval {
		return
	}
	name := wire.ReferralTopic(referralID)
	if c.subscription(name) == nil {
		if _, err := c.h.svc.Authorize(ctx, c.caller, referralID, "referral.typing"); err != nil {
			c.refuseErr(ctx, wire.ClientFrame{Type: wire.TypeTyping, Referral: referralID}, err)
			return
		}
	}
	if c.typedAt == nil || len(c.typedAt) > maxSubscriptions {
		c.typedAt = make(map[string]time.Time, 1)
	}
	c.typedAt[referralID] = now
	who := wire.Person{ID: c.caller.User.ID, Name: c.caller.User.Name}
	if t := c.h.lookup(name); t != nil {
		t.typing(who, c)
	}
	c.h.publish(name, envelope{Kind: "typing", User: &who})
}

// answer sends the ack of a committed command, or the error refusing it.
func (c *conn) answer(ctx context.Context, f wire.ClientFrame, e rooms.Event, err error) {
	if err != nil {
		c.refuseErr(ctx, f, err)
		return
	}
	c.enqueue(outFrame{data: mustFrame(wire.ServerFrame{Type: wire.TypeAck, Ref: f.Ref, Referral: e.ReferralID, Seq: e.Seq})})
}

// refuseErr sends the error frame for a refused frame. Errors that are not
// the service's refusals are logged and reported without detail.
func (c *conn) refuseErr(ctx context.Context, f wire.ClientFrame, err error) {
	ef := wire.ServerFrame{Ref: f.Ref, Code: string(rooms.CodeOf(err))}
	if f.Type == wire.TypeSubscribe {
		ef.Topic = f.Topic
	}
	if f.Type == wire.TypeTyping || f.Type == wire.TypeRead {
		ef.Referral = f.Referral
	}
	var de *rooms.Error
	if errors.As(err, &de) {
		ef.Message, ef.Field = de.Message, de.Field
		if de.Current != nil {
			ef.Current, _ = json.Marshal(currentSection{Revision: de.Current.Revision, Text: de.Current.Text})
		}
	} else {
		if c.closing() {
			return // nobody is listening
		}
		c.h.log.Error().Err(err).Str("conn", c.id).Str("frame", f.Type).Msg("frame failed")
		ef.Code, ef.Message = string(rooms.CodeInternal), "something went wrong on our side; try again"
	}
	c.refuse(ctx, ef, "")
}

// refuse sends an error frame. A frame the decoder refused is audited here
// (detail names the field, never the content); the service audits its own
// refusals.
func (c *conn) refuse(ctx context.Context, ef wire.ServerFrame, auditDetail string) {
	ef.Type = wire.TypeError
	c.refusals++
	c.h.m.framesRefused.Add(1)
	if auditDetail != "" {
		_ = c.h.svc.AuditCaller(ctx, c.caller, rooms.ActionExecute, "ws.frame", nil, rooms.OutcomeInvalid, auditDetail)
	}
	c.enqueue(outFrame{data: mustFrame(ef)})
}

// enqueue queues a frame for the writer without ever blocking: a full
// queue closes the connection with 4008, and the client resumes from its
// last seq. It reports whether the frame was queued.
func (c *conn) enqueue(f outFrame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return false
	}
	if len(c.queue) >= c.h.cfg.SendQueue {
		c.closeLocked(wire.CloseTooSlow, "too slow; reconnect and resume")
		c.h.m.slowCloses.Add(1)
		return false
	}
	c.queue = append(c.queue, f)
	c.wakeLocked()
	return true
}

// enqueueWait queues a frame of a replay, waiting for room rather than
// closing the connection: the replay is the client's own request and runs
// on its reader, so waiting slows only this client.
func (c *conn) enqueueWait(ctx context.Context, f outFrame) error {
	for {
		c.mu.Lock()
		if c.closeCode != 0 {
			c.mu.Unlock()
			return errConnClosing
		}
		if len(c.queue) < c.h.cfg.SendQueue {
			c.queue = append(c.queue, f)
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

// closeWith closes the connection with code once the writer gets to it:
// after the queued frames for 1001 (a drain), at once for the others. A
// session that ended gets nothing more.
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
		c.queue = nil
	}
	if code == wire.CloseSessionEnded {
		c.h.m.sessionCloses.Add(1)
	}
	signal(c.space) // a replay waiting for room sees the close at once
	c.wakeLocked()
}

// abort drops the connection without a close handshake (shutdown deadline).
func (c *conn) abort() {
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
	go c.writeLoop()
}

// pingTick runs on the ping timer's goroutine: it asks for a ping, arms the
// next, and becomes the writer itself when none is running.
func (c *conn) pingTick() {
	c.mu.Lock()
	if c.closeCode != 0 || c.finished {
		c.mu.Unlock()
		return
	}
	c.pingDue = true
	c.pinger.Reset(c.h.cfg.PingInterval)
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	c.writeLoop()
}

// writeLoop is the connection's only writer: frames, pings and the close.
// It returns when it has nothing to do, and wakeLocked or pingTick starts
// it again. The writer that closes the socket marks the connection
// finished, so no writer runs after the close.
func (c *conn) writeLoop() {
	var batch []outFrame
	for {
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		code, reason, ping := c.closeCode, c.closeReason, c.pingDue
		c.pingDue = false
		if len(batch) == 0 && code == 0 && !ping {
			// Idle: keep no buffer and no goroutine.
			c.queue, c.writing = nil, false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if len(batch) > 0 {
			signal(c.space)
		}
		for i, f := range batch {
			if i%64 == 63 && c.stopping() {
				break
			}
			if err := c.write(f); err != nil {
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
			ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.PingInterval)
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
	c.writing, c.finished, c.queue = false, true, nil
	c.mu.Unlock()
	close(c.done)
}

func (c *conn) write(f outFrame) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, f.data); err != nil {
		return err
	}
	if f.event {
		c.h.m.eventsDelivered.Add(1)
		if !f.at.IsZero() {
			if d := time.Since(f.at); d >= 0 && d < time.Hour {
				c.h.m.latency.observe(d)
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

func (c *conn) sessionID() string {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.session.ID
}

// touch checks the session is live and, for the user's activity, records
// it as an API request does, at most once per touchInterval. It reports
// false, and closes the connection, when the session has ended or timed
// out: the frame is then not executed.
func (c *conn) touch(ctx context.Context, activity bool) bool {
	now := c.h.clock.Now()
	c.sessMu.Lock()
	rec := c.session
	c.sessMu.Unlock()
	if c.h.sessions.expired(rec, now) {
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
	alive, err := c.h.sessions.touch(ctx, rec, now)
	if err != nil {
		return true // the session was live a moment ago; try again on the next frame
	}
	if !alive {
		c.closeWith(wire.CloseSessionEnded, "session ended")
		return false
	}
	c.sessMu.Lock()
	c.session.LastSeenAt = now.Truncate(time.Microsecond)
	c.sessMu.Unlock()
	return true
}

// scheduleExpiry arms the timer that ends the connection when its session
// times out (idle or absolute). When it fires the session is read again,
// since activity elsewhere (the browser's API calls, another node) may
// have extended it.
func (c *conn) scheduleExpiry() {
	c.sessMu.Lock()
	rec := c.session
	c.sessMu.Unlock()
	deadline := rec.LastSeenAt.Add(IdleTimeout)
	if abs := rec.CreatedAt.Add(AbsoluteTimeout); abs.Before(deadline) {
		deadline = abs
	}
	wait := max(deadline.Sub(c.h.clock.Now()), time.Second)
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	select {
	case <-c.done:
		return // the connection is over; run has stopped the timer
	default:
	}
	if c.expiry == nil {
		c.expiry = time.AfterFunc(wait, func() { c.checkSession() })
	} else {
		c.expiry.Reset(wait)
	}
}

// checkSession reads the connection's session again and closes the
// connection with 4001 if it has ended or timed out; otherwise it rearms the
// expiry timer. It reports whether the session is alive.
func (c *conn) checkSession() bool {
	if c.closing() {
		return false
	}
	c.sessMu.Lock()
	hash := c.session.TokenHash
	c.sessMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := c.h.store.SessionByTokenHash(ctx, hash)
	switch {
	case errors.Is(err, rooms.ErrNotFound) || (err == nil && c.h.sessions.expired(rec, c.h.clock.Now())):
		c.closeWith(wire.CloseSessionEnded, "session ended")
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
