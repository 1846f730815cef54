package rooms

import (
	"context"
	"time"
)

// The workflow's durable state (SPEC §9): notifications, system notices, the
// OPEL level each organisation's bed managers set, wallboard displays, and
// the scheduler's lock. Reads are on WorkflowReader (a Store and a Tx both
// have them); writes on WorkflowTx, in the transaction of the command that
// causes them, so a notification is stored with the event it tells of or
// not at all.

// Notification tells one user of a change that concerns them.
type Notification struct {
	// ID orders a user's notifications: a later notification has a greater
	// ID (compared as strings: the service makes them sixteen hex digits of microseconds, then a counter).
	ID         string    `json:"id"`
	UserID     string    `json:"-"`
	Kind       string    `json:"kind"`
	ReferralID string    `json:"referral,omitempty"`
	Seq        int64     `json:"seq,omitempty"`
	At         time.Time `json:"at"`
	// Title is a short line for a list: a kind and a short reference, never
	// a message body, plan text, patient name or NHS number.
	Title string `json:"title"`
	Read  bool   `json:"read"`
}

// NotificationFilter selects a user's notifications, newest first.
type NotificationFilter struct {
	UnreadOnly bool
	// Limit caps the result; zero means the store's default of 50.
	Limit int
}

// The notifications a listing returns when its filter sets no limit, and
// the most it returns whatever the filter asks.
const (
	DefaultNotificationLimit = 50
	MaxNotificationLimit     = 500
)

// Size is the number of notifications f asks for, bounded: every store
// lists this many at most.
func (f NotificationFilter) Size() int {
	if f.Limit <= 0 {
		return DefaultNotificationLimit
	}
	return min(f.Limit, MaxNotificationLimit)
}

// SystemNotice is a banner every connected user and display sees until it
// is cleared.
type SystemNotice struct {
	ID       string    `json:"id"`
	Level    string    `json:"level"` // info, degraded, outage
	Message  string    `json:"message"`
	PostedBy Author    `json:"posted_by"`
	PostedAt time.Time `json:"posted_at"`
}

// OPEL is an organisation's Operational Pressures Escalation Level (1 to 4)
// as its bed managers last set it.
type OPEL struct {
	Organisation string    `json:"-"`
	Level        int       `json:"level"`
	Note         string    `json:"note,omitempty"`
	SetAt        time.Time `json:"set_at"`
	SetBy        Author    `json:"set_by"`
}

// Display is a wall screen's read-only access to its organisation's
// wallboard and the system notices. The screen holds a random token; the
// store keeps its hash.
type Display struct {
	ID           string     `json:"id"`
	Organisation string     `json:"organisation"`
	Name         string     `json:"name"`
	TokenHash    string     `json:"-"`
	CreatedBy    string     `json:"created_by"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// WorkflowReader reads the workflow's state. Lookups of one row return an
// error wrapping ErrNotFound when it is absent.
type WorkflowReader interface {
	// Notifications lists a user's notifications, newest (greatest ID)
	// first.
	Notifications(ctx context.Context, userID string, f NotificationFilter) ([]Notification, error)
	// UnreadNotifications counts a user's unread notifications.
	UnreadNotifications(ctx context.Context, userID string) (int, error)
	// ReadMarkers returns the user's read markers in the referrals named;
	// a referral without one is absent from the map.
	ReadMarkers(ctx context.Context, userID string, referralIDs []string) (map[string]int64, error)

	// SystemNotice returns the notice in force; ErrNotFound when none is.
	SystemNotice(ctx context.Context) (SystemNotice, error)
	// OPEL returns the organisation's level; ErrNotFound when never set.
	OPEL(ctx context.Context, organisation string) (OPEL, error)

	// Display returns a display, revoked or not.
	Display(ctx context.Context, id string) (Display, error)
	// DisplayByTokenHash returns the display holding the token, revoked or
	// not.
	DisplayByTokenHash(ctx context.Context, tokenHash string) (Display, error)
	// Displays lists an organisation's displays, newest first, revoked ones
	// included.
	Displays(ctx context.Context, organisation string) ([]Display, error)

	// DueReminders returns up to limit ids of referrals whose ReminderAt is
	// at or before now, earliest first.
	DueReminders(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// WorkflowTx writes the workflow's state inside a transaction.
type WorkflowTx interface {
	// AddNotifications stores notifications; ErrDuplicate when an ID is
	// taken.
	AddNotifications(ctx context.Context, ns []Notification) error
	// MarkNotificationsRead marks read the user's notifications with an ID
	// at or before upTo (when upTo is set) and those named in ids (other
	// users' ids are ignored), and returns how many were unread.
	MarkNotificationsRead(ctx context.Context, userID, upTo string, ids []string) (int, error)

	// PutSystemNotice puts n in force in place of any notice before it.
	PutSystemNotice(ctx context.Context, n SystemNotice) error
	// ClearSystemNotice ends the notice in force, recording who cleared it
	// and when; ErrNotFound when none is.
	ClearSystemNotice(ctx context.Context, by string, at time.Time) error
	// PutOPEL sets an organisation's level.
	PutOPEL(ctx context.Context, o OPEL) error

	// CreateDisplay stores a new display; ErrDuplicate when the id or token
	// hash is taken.
	CreateDisplay(ctx context.Context, d Display) error
	// RevokeDisplay marks a display revoked at at; ErrNotFound when there
	// is no such display or it is revoked already.
	RevokeDisplay(ctx context.Context, id string, at time.Time) error
}

// SchedulerLock lets one process at a time run the triage clocks' scheduler
// (a Postgres advisory lock held on a connection of its own; the embedded
// store's single process). A process that dies loses the lock with its
// connection, and another takes it on its next try.
type SchedulerLock interface {
	// HoldSchedulerLock takes the lock when it is free, or confirms that
	// this process still holds it (its connection is alive), and reports
	// whether this process holds it now.
	HoldSchedulerLock(ctx context.Context) (bool, error)
	// ReleaseSchedulerLock gives the lock up, if held.
	ReleaseSchedulerLock(ctx context.Context) error
}
