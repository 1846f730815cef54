package realtime

import (
	"context"

	"patientpass/rooms"
)

// A Feed is one kind of topic. Topics are named "kind:key" ("referral:ID",
// "board:mscc", "user:ID") or, for a feed with one topic, "kind" alone
// ("system", "wallboard"). The hub finds a subscription's feed by its kind
// and asks it three things: may this caller subscribe (Authorize), what goes
// out on subscribe (an EventFeed replays stored events after a seq; a
// SnapshotFeed sends its snapshot), and which topics an update reaches
// (EventFeed.Route for committed events; Hub.Update for snapshot feeds). The
// connection code knows none of this: a new kind of topic is a new Feed.
type Feed interface {
	// Kind is the part of the topic name before the colon, or the whole
	// name of a feed without keys.
	Kind() string
	// Keyed reports whether topics of this kind carry a key.
	Keyed() bool
	// Authorize decides whether c may subscribe to key (empty for a feed
	// without keys), and audits the decision. A refusal is a *rooms.Error:
	// not_found for what c may not know exists.
	Authorize(ctx context.Context, c rooms.Caller, key string, after int64) error
}

// An EventFeed is a feed of numbered stored events: a subscriber gets the
// events after the seq it names, then every later one, in seq order, with
// no gap and no duplicate (gaps are repaired from the store). Its topics
// also carry presence and typing.
type EventFeed interface {
	Feed
	// Events returns up to limit stored events of key with seq > after, in
	// order. The subscriber has been authorised.
	Events(ctx context.Context, key string, after int64, limit int) ([]rooms.Event, error)
	// Route returns the key of the topic a committed event belongs to.
	Route(e rooms.Event) (key string, ok bool)
}

// A SnapshotFeed sends a snapshot of its state on subscribe, then the
// updates published to the topic with Hub.Update, in the order they were
// published on each node.
type SnapshotFeed interface {
	Feed
	// Snapshot returns the data of the snapshot frame for c.
	Snapshot(ctx context.Context, c rooms.Caller, key string) (any, error)
}

// An Ordered update says what it is about and as of when (a referral and
// its seq): a subscriber is never sent one older than what it already holds
// about the same key, whichever node published it and in whatever order
// they arrive. A snapshot whose data is an OrderedSnapshot says what it
// holds.
type Ordered interface {
	OrderKey() (key string, seq int64)
}

// An OrderedSnapshot is snapshot data that says, for each key it holds, as
// of which seq.
type OrderedSnapshot interface {
	OrderSeqs() map[string]int64
}

func orderOf(data any) (string, int64) {
	if o, ok := data.(Ordered); ok {
		if key, seq := o.OrderKey(); key != "" && len(key) <= 255 {
			return key, seq
		}
	}
	return "", 0
}

// A ScopedFeed is a feed without keys whose one topic name stands for a
// different topic for each caller: "user" is the caller's own feed,
// "wallboard" their organisation's. Scope returns the caller's key; the hub
// keeps the topic as "kind:scope" and names it "kind" in frames.
type ScopedFeed interface {
	Feed
	Scope(c rooms.Caller) string
}

// ReferralFeed is the "referral:ID" feed: a referral's room. The service
// authorises and audits each subscription, and the store replays its
// events.
type ReferralFeed struct {
	Service *rooms.Service
}

var _ EventFeed = ReferralFeed{}

// Kind is "referral".
func (ReferralFeed) Kind() string { return "referral" }

// Keyed is true: the key is the referral id.
func (ReferralFeed) Keyed() bool { return true }

// Authorize lets those who may view the referral subscribe to its room.
func (f ReferralFeed) Authorize(ctx context.Context, c rooms.Caller, referralID string, after int64) error {
	_, err := f.Service.Subscribe(ctx, c, referralID, after)
	return err
}

// Events reads the room's stored events.
func (f ReferralFeed) Events(ctx context.Context, referralID string, after int64, limit int) ([]rooms.Event, error) {
	return f.Service.RoomEvents(ctx, referralID, after, limit)
}

// Route sends every event to its referral's room.
func (ReferralFeed) Route(e rooms.Event) (string, bool) { return e.ReferralID, true }
