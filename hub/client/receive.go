package client

import (
	"encoding/json"
	"time"

	"patientpass/hub/wire"
)

// handleFrame takes one frame read at received: events are counted and go
// to OnEvent; answers settle the call waiting for them; everything else goes
// to OnFrame. It runs on the read goroutine and holds no lock while calling
// back.
func (c *Client) handleFrame(data []byte, received time.Time) {
	var f wire.ServerFrame
	if err := json.Unmarshal(data, &f); err != nil || f.Type == "" {
		c.mu.Lock()
		c.stats.Malformed++
		c.mu.Unlock()
		return
	}
	var claimed bool
	switch f.Type {
	case wire.TypeEvent:
		c.recordEvent(f.Topic, f.Seq)
		if c.opts.OnEvent != nil {
			c.opts.OnEvent(Event{Topic: f.Topic, Seq: f.Seq, Event: f.Event, Received: received})
		}
		return
	case wire.TypeSubscribed:
		claimed = c.answerSubscribed(f)
	case wire.TypeAck:
		claimed = c.answerCommand(f.Ref, Ack{Ref: f.Ref, Referral: f.Referral, Seq: f.Seq}, nil)
	case wire.TypeError:
		switch {
		case f.Ref != "" && f.Code == "rate_limited":
			claimed = c.retryLimited(f.Ref)
		case f.Ref != "":
			claimed = c.answerCommand(f.Ref, Ack{}, serverError(f))
		case f.Topic != "":
			claimed = c.refuseSubscription(f)
		}
	}
	if !claimed && c.opts.OnFrame != nil {
		c.opts.OnFrame(f)
	}
}

// recordEvent counts an event against the last seq of its topic. An event
// for a topic the client does not hold is counted too (against 0 for a
// topic never seen): it is itself something the server should not do.
func (c *Client) recordEvent(topic string, seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Events++
	last := c.last[topic]
	switch {
	case seq <= last:
		c.stats.Duplicates++
	case seq > last+1:
		c.stats.Gaps++
	}
	if seq > last {
		c.last[topic] = seq
	}
}
