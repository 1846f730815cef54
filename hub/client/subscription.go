package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/coder/websocket"

	"patientpass/hub/wire"
)

var (
	errAlreadySubscribed = errors.New("already subscribed; unsubscribe first")
	errUnsubscribed      = errors.New("unsubscribed before the server answered")
)

// subscription is a topic the client holds and resubscribes after each
// reconnect. Its fields are guarded by Client.mu; head and err are final
// once ready is closed.
type subscription struct {
	// sentOn is the generation of the connection the subscribe frame last
	// went out on, so a new connection sends it exactly once.
	sentOn uint64
	// ready is closed by the first answer: subscribed or a refusal.
	ready    chan struct{}
	answered bool
	head     int64
	err      error
}

// answerLocked settles the waiting Subscribe call, if it still waits, and
// reports whether it did.
func (s *subscription) answerLocked(head int64, err error) bool {
	if s.answered {
		return false
	}
	s.answered = true
	s.head, s.err = head, err
	close(s.ready)
	return true
}

// Subscribe subscribes to topic from seq after (events with a greater seq
// are replayed, then live ones follow) and returns the topic's head seq once
// the subscription is live. The client keeps the subscription across
// reconnects, resuming from the last seq it saw. If the connection drops
// before the answer, Subscribe waits for the resubscription's answer. A
// refusal returns a *ServerError and forgets the subscription. If ctx ends
// first, the subscription is withdrawn (an unsubscribe is sent if needed),
// though events already on their way still reach OnEvent. A topic already
// held is refused: unsubscribe first.
func (c *Client) Subscribe(ctx context.Context, topic string, after int64) (head int64, err error) {
	if topic == "" {
		return 0, errors.New("subscribe: empty topic")
	}
	sub, err := c.addSubscription(topic, after)
	if err != nil {
		return 0, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	return c.awaitSubscription(ctx, topic, sub)
}

// addSubscription records the subscription and sends it if connected.
func (c *Client) addSubscription(topic string, after int64) (*subscription, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return nil, c.stopErrLocked()
	}
	if _, held := c.subs[topic]; held {
		c.mu.Unlock()
		return nil, errAlreadySubscribed
	}
	sub := &subscription{ready: make(chan struct{})}
	c.subs[topic] = sub
	c.last[topic] = after
	conn := c.conn
	if conn != nil {
		sub.sentOn = c.gen
	}
	c.mu.Unlock()
	if conn != nil {
		// A failed write has closed the connection; the next one
		// resubscribes, and the caller keeps waiting for that answer.
		_ = c.write(conn, subscribeFrame(topic, after))
	}
	return sub, nil
}

// awaitSubscription waits for the answer to sub.
func (c *Client) awaitSubscription(ctx context.Context, topic string, sub *subscription) (int64, error) {
	select {
	case <-sub.ready:
		return sub.head, sub.err
	case <-c.ctx.Done():
		return 0, c.stopErr()
	case <-ctx.Done():
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if sub.answered {
		// The answer arrived as ctx ended; it is still the truth.
		c.mu.Unlock()
		return sub.head, sub.err
	}
	conn := c.removeSubscriptionLocked(topic, sub)
	c.mu.Unlock()
	if conn != nil {
		_ = c.write(conn, unsubscribeFrame(topic))
	}
	return 0, ctx.Err()
}

// removeSubscriptionLocked forgets sub, fails its waiting call, and returns
// the connection an unsubscribe must go out on, or nil when the current
// connection never carried the subscribe.
func (c *Client) removeSubscriptionLocked(topic string, sub *subscription) *websocket.Conn {
	if c.subs[topic] != sub {
		return nil
	}
	delete(c.subs, topic)
	sub.answerLocked(0, errUnsubscribed)
	if c.conn == nil || sub.sentOn != c.gen {
		return nil
	}
	return c.conn
}

// Unsubscribe forgets topic, so it is not resubscribed after a reconnect,
// and tells the server; the server does not answer. A Subscribe still
// waiting for topic fails. Events already on their way still reach OnEvent
// and are counted against the topic's last seq, which LastSeq keeps.
// Unsubscribing from a topic the client does not hold does nothing.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return c.stopErrLocked()
	}
	sub, held := c.subs[topic]
	var conn *websocket.Conn
	if held {
		conn = c.removeSubscriptionLocked(topic, sub)
	}
	c.mu.Unlock()
	if conn != nil {
		// A failed write has closed the connection, and the next one will
		// not carry the topic, so the outcome is the same.
		_ = c.write(conn, unsubscribeFrame(topic))
	}
	return nil
}

// answerSubscribed settles the Subscribe waiting for f.Topic, if any.
func (c *Client) answerSubscribed(f wire.ServerFrame) bool {
	var head int64
	if f.Head != nil {
		head = *f.Head
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sub, held := c.subs[f.Topic]
	return held && sub.answerLocked(head, nil)
}

// refuseSubscription forgets the subscription a topic-bearing error frame
// refuses, so it is not retried on every reconnect, and settles its waiting
// Subscribe if there is one.
func (c *Client) refuseSubscription(f wire.ServerFrame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	sub, held := c.subs[f.Topic]
	if !held {
		return false
	}
	delete(c.subs, f.Topic)
	return sub.answerLocked(0, serverError(f))
}

func subscribeFrame(topic string, after int64) []byte {
	return encode(wire.ClientFrame{Type: wire.TypeSubscribe, Topic: topic, After: &after})
}

func unsubscribeFrame(topic string) []byte {
	return encode(wire.ClientFrame{Type: wire.TypeUnsubscribe, Topic: topic})
}

// encode marshals a client frame, which cannot fail: every field is a
// string, a number or a map the caller built from JSON-able values.
func encode(f wire.ClientFrame) []byte {
	data, err := marshal(f)
	if err != nil {
		panic(fmt.Sprintf("client: encode %s frame: %v", f.Type, err))
	}
	return data
}

// marshal encodes a frame without HTML escaping: json.Marshal writes each
// '<', '>' and '&' as six bytes, so a plan of markup-heavy text the server
// accepts would not fit in a frame.
func marshal(f wire.ClientFrame) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
