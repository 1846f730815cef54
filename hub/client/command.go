package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"patientpass/hub/wire"
)

// ServerError is a refusal from the server: of a command (Ref is set), of a
// subscription (Topic is set), or of a typing or read frame (only in
// OnFrame). Code is one of SPEC §5's codes; Current carries the current plan
// section when a plan edit conflicts.
type ServerError struct {
	Ref, Topic, Code, Message, Field string
	Current                          json.RawMessage
}

func (e *ServerError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("server refused: %s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("server refused: %s: %s", e.Code, e.Message)
}

func serverError(f wire.ServerFrame) *ServerError {
	return &ServerError{Ref: f.Ref, Topic: f.Topic, Code: f.Code, Message: f.Message, Field: f.Field, Current: f.Current}
}

// command is a frame waiting for its ack or error. Its fields are guarded by
// Client.mu; ack and err are final once done is closed.
type command struct {
	frame []byte // encoded once, so a re-send is byte for byte the original
	order uint64
	// sentOn is the generation of the connection the frame last went out
	// on, so a new connection re-sends it exactly once.
	sentOn uint64
	done   chan struct{}
	ack    Ack
	err    error
	// limited counts the times the server refused it as rate limited.
	limited int
}

// Send sends a message, plan_edit or transition frame and waits for the
// server's answer: the Ack once the command is committed, or a
// *ServerError. An empty Ref is replaced by a new random one. If the
// connection drops first, the frame is re-sent with the same ref after the
// reconnect, and the server applies it only once. If ctx ends first, Send
// returns ctx.Err(), but the command may still be committed: its ack then
// goes to OnFrame.
func (c *Client) Send(ctx context.Context, f wire.ClientFrame) (Ack, error) {
	cmd, ref, err := c.addCommand(f)
	if err != nil {
		return Ack{}, err
	}
	return c.awaitCommand(ctx, ref, cmd)
}

// Message posts body to a referral's room.
func (c *Client) Message(ctx context.Context, referral, body string) (Ack, error) {
	return c.Send(ctx, wire.ClientFrame{Type: wire.TypeMessage, Referral: referral, Body: body})
}

// addCommand records the command and sends it if connected.
func (c *Client) addCommand(f wire.ClientFrame) (*command, string, error) {
	switch f.Type {
	case wire.TypeMessage, wire.TypePlanEdit, wire.TypeTransition:
	default:
		return nil, "", fmt.Errorf("send: %q frames are not commands; use Subscribe, Unsubscribe, Typing or Read", f.Type)
	}
	if f.Ref == "" {
		f.Ref = newRef()
	}
	data, err := marshal(f)
	if err != nil {
		return nil, "", fmt.Errorf("send %s %s: encode: %w", f.Type, f.Ref, err)
	}
	if len(data) > wire.MaxFrame {
		// The server would close the connection, and a re-send after the
		// reconnect would do the same, for ever.
		return nil, "", fmt.Errorf("send %s %s: the frame is %d bytes, more than the %d a frame may hold", f.Type, f.Ref, len(data), wire.MaxFrame)
	}
	cmd := &command{frame: data, done: make(chan struct{})}
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return nil, "", c.stopErrLocked()
	}
	if _, waiting := c.pending[f.Ref]; waiting {
		c.mu.Unlock()
		return nil, "", fmt.Errorf("send %s: ref %s is already waiting for an answer", f.Type, f.Ref)
	}
	c.order++
	cmd.order = c.order
	c.pending[f.Ref] = cmd
	conn := c.conn
	if conn != nil {
		cmd.sentOn = c.gen
	}
	c.mu.Unlock()
	if conn != nil {
		// A failed write has closed the connection; the next one re-sends.
		_ = c.write(conn, data)
	}
	return cmd, f.Ref, nil
}

// awaitCommand waits for the answer to cmd.
func (c *Client) awaitCommand(ctx context.Context, ref string, cmd *command) (Ack, error) {
	select {
	case <-cmd.done:
		return cmd.ack, cmd.err
	case <-c.ctx.Done():
		return Ack{}, c.stopErr()
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[ref] != cmd {
		// The answer arrived as ctx ended; it is still the truth.
		return cmd.ack, cmd.err
	}
	delete(c.pending, ref)
	return Ack{}, ctx.Err()
}

// answerCommand settles the Send waiting for ref, if any.
func (c *Client) answerCommand(ref string, ack Ack, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd, waiting := c.pending[ref]
	if !waiting {
		return false
	}
	delete(c.pending, ref)
	cmd.ack, cmd.err = ack, err
	close(cmd.done)
	return true
}

// retryLimited sends again, after a pause that grows with each refusal, a
// command the server refused as rate limited: such a command was not
// executed, so sending it again with its ref is safe. It reports whether
// ref was waiting for an answer.
func (c *Client) retryLimited(ref string) bool {
	c.mu.Lock()
	cmd, waiting := c.pending[ref]
	if !waiting {
		c.mu.Unlock()
		return false
	}
	cmd.limited++
	pause := min(time.Duration(cmd.limited)*rateLimitPause, maxRateLimitPause)
	c.mu.Unlock()
	time.AfterFunc(pause, func() {
		c.mu.Lock()
		conn := c.conn
		if c.stopped || c.pending[ref] != cmd || conn == nil {
			// Answered, given up, or disconnected: a new connection
			// re-sends whatever is still waiting.
			c.mu.Unlock()
			return
		}
		cmd.sentOn = c.gen
		c.mu.Unlock()
		_ = c.write(conn, cmd.frame)
	})
	return true
}

// The pause before re-sending a rate-limited command grows by
// rateLimitPause with each refusal, up to maxRateLimitPause.
const (
	rateLimitPause    = 100 * time.Millisecond
	maxRateLimitPause = 2 * time.Second
)

// Typing tells the room the user is typing. It is not replayed: between
// connections it fails with ErrNotConnected, and a refusal goes to OnFrame.
func (c *Client) Typing(referral string) error {
	return c.sendNow(encode(wire.ClientFrame{Type: wire.TypeTyping, Referral: referral}))
}

// Read records that the user has read a referral's room up to seq. Like
// Typing it is not replayed and its refusal goes to OnFrame; ctx only
// stops it from being sent once ended, since ending a write's context would
// close the connection for every other caller.
func (c *Client) Read(ctx context.Context, referral string, seq int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.sendNow(encode(wire.ClientFrame{Type: wire.TypeRead, Referral: referral, Seq: &seq}))
}

// sendNow writes a frame on the live connection, if there is one.
func (c *Client) sendNow(data []byte) error {
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return c.stopErrLocked()
	}
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	if err := c.write(conn, data); err != nil {
		return errors.Join(ErrNotConnected, err)
	}
	return nil
}

// newRef returns 16 random bytes in hex: unique enough that a ref names one
// command for the server's idempotency check.
func newRef() string {
	var b [16]byte
	// crypto/rand.Read never returns an error; it crashes the program
	// rather than hand out predictable bytes.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
