package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/httpjson"
	"patientpass/hub/realtime"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// limitedAuditInterval is the least time between two audit entries for a
// connection's rate-limited frames: each refusal is answered, and the audit
// trail records each burst with its count, so a flood cannot turn into a
// flood of audit writes.
const limitedAuditInterval = time.Second

// floodLimit is how many rate-limited frames a connection may send within
// a second before it is closed (1008): ten times the default burst, far
// more than a client re-sending its unanswered commands after a pause.
const floodLimit = 1000

// frame decodes and executes one frame, or refuses it.
func (c *conn) frame(ctx context.Context, typ websocket.MessageType, data []byte) {
	if c.closing() {
		return // read after the close was decided (session ended, too slow, shutdown): not executed
	}
	if !c.bucket.take(time.Now()) {
		c.rateLimited(ctx, data)
		return
	}
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

// rateLimited refuses a frame over the connection's rate with a
// rate_limited error frame naming its ref, so the client knows the command
// was not executed and may send it again later. Nothing is dropped
// silently, and a command refused here was never acknowledged.
func (c *conn) rateLimited(ctx context.Context, data []byte) {
	// Not counted among the refusals that close a misbehaving connection:
	// a client re-sending its commands after a reconnect may well run
	// ahead of the rate, and each refusal costs the server one small frame.
	c.s.m.RateLimitedCommands.Inc()
	c.limited++
	ef := wire.ServerFrame{Type: wire.TypeError, Code: string(rooms.CodeRateLimited),
		Message: fmt.Sprintf("too many frames; at most %g a second, so wait a moment and send again", c.s.cfg.CommandRate)}
	// The ref is read from commands of a modest size only: reading it must
	// not cost more than the refusal saves.
	var peek struct {
		Ref string `json:"ref"`
	}
	if len(data) <= 16<<10 && json.Unmarshal(data, &peek) == nil && len(peek.Ref) <= rooms.MaxRefLen {
		ef.Ref = httpjson.Printable(peek.Ref, rooms.MaxRefLen)
	}
	now := time.Now()
	if now.Sub(c.floodSince) >= time.Second {
		c.floodSince, c.flood = now, 0
	}
	if c.flood++; c.flood > floodLimit {
		// Far beyond what a client re-sending its commands sends: a flood.
		c.Close(realtime.DisconnectRateLimited)
	}
	if now.Sub(c.limitedAudited) >= limitedAuditInterval {
		c.limitedAudited = now
		_ = c.s.svc.AuditCaller(ctx, c.caller, rooms.ActionExecute, "ws.frame", nil, rooms.OutcomeDenied,
			fmt.Sprintf("rate_limited conn=%s count=%d", c.id, c.limited))
		c.limited = 0
	}
	c.Send(realtime.Frame{Data: realtime.EncodeFrame(ef)})
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
			c.refuse(ctx, wire.ServerFrame{Topic: f.Topic, Code: string(rooms.CodeInvalid), Field: "topic", Message: "you are not subscribed to " + httpjson.Printable(f.Topic, 100)}, "unsubscribe")
			return
		}
		sub.End()
	case wire.TypeMessage:
		e, err := c.s.svc.PostMessage(ctx, c.caller, rooms.PostMessage{Ref: f.Ref, ReferralID: f.Referral, Body: f.Body})
		c.answer(ctx, f, e, err)
	case wire.TypePlanEdit:
		e, _, err := c.s.svc.EditPlan(ctx, c.caller, rooms.EditPlan{
			Ref: f.Ref, ReferralID: f.Referral, Section: f.Section, BaseRevision: *f.BaseRevision, Text: *f.Text,
		})
		c.answer(ctx, f, e, err)
	case wire.TypeTransition:
		e, _, err := c.s.svc.Transition(ctx, c.caller, rooms.Transition{
			Ref: f.Ref, ReferralID: f.Referral, To: rooms.Status(f.To), Reason: f.Reason, Outcome: f.Outcome,
		})
		c.answer(ctx, f, e, err)
	case wire.TypeTyping:
		c.typing(ctx, f.Referral)
	case wire.TypeRead:
		if err := c.s.svc.MarkRead(ctx, c.caller, f.Referral, *f.Seq); err != nil {
			c.refuseErr(ctx, f, err)
		}
	}
}

// subscribe starts a subscription through the hub, whose feed for the
// topic authorises it and sends what a new subscriber gets.
func (c *conn) subscribe(ctx context.Context, f wire.ClientFrame) {
	refuse := func(code rooms.Code, msg string) {
		c.refuse(ctx, wire.ServerFrame{Topic: f.Topic, Code: string(code), Field: "topic", Message: msg}, "subscribe")
	}
	if err := c.s.hub.CheckTopic(f.Topic); err != nil {
		refuse(rooms.CodeInvalid, err.(*rooms.Error).Message)
		return
	}
	if c.subscription(f.Topic) != nil {
		refuse(rooms.CodeConflict, "you are already subscribed to "+httpjson.Printable(f.Topic, 100))
		return
	}
	if len(c.subs) >= maxSubscriptions {
		refuse(rooms.CodeInvalid, fmt.Sprintf("a connection may hold at most %d subscriptions", maxSubscriptions))
		return
	}
	var after int64
	if f.After != nil {
		after = *f.After
	}
	sub, err := c.s.hub.Subscribe(ctx, c, f.Topic, after)
	if err != nil {
		var de *rooms.Error
		switch {
		case errors.As(err, &de):
			c.refuseErr(ctx, f, err)
		case errors.Is(err, errConnClosing) || c.closing():
		default:
			c.s.log.Error().Err(err).Str("conn", c.id).Msg("replay for a subscription failed")
			c.refuse(ctx, wire.ServerFrame{Topic: f.Topic, Code: string(rooms.CodeInternal), Message: "the room could not be loaded; try again"}, "")
		}
		return
	}
	c.subs = append(c.subs, sub)
}

// subscription returns c's subscription to topic, or nil.
func (c *conn) subscription(topic string) *realtime.Subscription {
	for _, sub := range c.subs {
		if sub.Topic() == topic {
			return sub
		}
	}
	return nil
}

// unsubscribe forgets c's subscription to topic and returns it, or nil.
func (c *conn) unsubscribe(topic string) *realtime.Subscription {
	i := slices.IndexFunc(c.subs, func(sub *realtime.Subscription) bool { return sub.Topic() == topic })
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
		if _, err := c.s.svc.Authorize(ctx, c.caller, referralID, "referral.typing"); err != nil {
			c.refuseErr(ctx, wire.ClientFrame{Type: wire.TypeTyping, Referral: referralID}, err)
			return
		}
	}
	if c.typedAt == nil || len(c.typedAt) > maxSubscriptions {
		c.typedAt = make(map[string]time.Time, 1)
	}
	c.typedAt[referralID] = now
	c.s.hub.Typing(c, name, wire.Person{ID: c.caller.User.ID, Name: c.caller.User.Name})
}

// answer sends the ack of a committed command, or the error refusing it.
func (c *conn) answer(ctx context.Context, f wire.ClientFrame, e rooms.Event, err error) {
	if err != nil {
		c.refuseErr(ctx, f, err)
		return
	}
	c.Send(realtime.Frame{Data: realtime.EncodeFrame(wire.ServerFrame{Type: wire.TypeAck, Ref: f.Ref, Referral: e.ReferralID, Seq: e.Seq})})
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
			ef.Current = realtime.EncodeJSON(httpjson.CurrentSection{Revision: de.Current.Revision, Text: de.Current.Text})
		}
	} else {
		if c.closing() {
			return // nobody is listening
		}
		c.s.log.Error().Err(err).Str("conn", c.id).Str("frame", f.Type).Msg("frame failed")
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
	c.s.m.FramesRefused.Inc()
	if auditDetail != "" {
		_ = c.s.svc.AuditCaller(ctx, c.caller, rooms.ActionExecute, "ws.frame", nil, rooms.OutcomeInvalid, auditDetail)
	}
	c.Send(realtime.Frame{Data: realtime.EncodeFrame(ef)})
}
