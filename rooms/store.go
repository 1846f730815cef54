package rooms

import (
	"context"
	"encoding/json"
	"time"
)

// Reader reads the durable state. Both a Store and a Tx are Readers; reads
// through a Tx see the transaction's own writes.
//
// Lookups of one row return an error wrapping ErrNotFound when it is absent.
type Reader interface {
	Organisation(ctx context.Context, ods string) (Organisation, error)
	Organisations(ctx context.Context) ([]Organisation, error)

	User(ctx context.Context, id string) (User, error)
	// UserByEmail looks a user up by normalised email.
	UserByEmail(ctx context.Context, email string) (User, error)
	// Users lists users, oldest first, filtered by organisation and status
	// when those are set.
	Users(ctx context.Context, f UserFilter) ([]User, error)

	Pathway(ctx context.Context, id string) (Pathway, error)
	Pathways(ctx context.Context) ([]Pathway, error)

	// Referral returns a referral with its stored plan sections (sorted by
	// name; sections never edited are absent) and participants (oldest
	// first).
	Referral(ctx context.Context, id string) (Referral, error)
	// Referrals lists referrals matching f, earliest triage deadline first
	// (referrals without one last), then newest first. Plan and participants
	// are filled in.
	Referrals(ctx context.Context, f ReferralFilter) ([]Referral, error)

	// Events returns up to limit events of a referral with seq > after, in
	// seq order. limit <= 0 means no limit.
	Events(ctx context.Context, referralID string, after int64, limit int) ([]Event, error)
	// Event returns one event.
	Event(ctx context.Context, referralID string, seq int64) (Event, error)

	// ReadMarker returns the last seq the user has read in the referral, 0
	// when none is stored.
	ReadMarker(ctx context.Context, referralID, userID string) (int64, error)

	// Command returns the record of a command by its actor and ref.
	Command(ctx context.Context, actorID, ref string) (CommandRecord, error)

	WorkflowReader
}

// UserFilter selects users.
type UserFilter struct {
	Organisation string
	Status       UserStatus
}

// CommandRecord remembers a command that was executed, so that repeating it
// with the same ref returns the first result and changes nothing.
type CommandRecord struct {
	ActorID    string
	Ref        string
	Kind       string
	ReferralID string
	// Result is the command's result as JSON.
	Result json.RawMessage
	At     time.Time
}

// Tx is one store transaction. Everything written through it commits or rolls
// back together.
type Tx interface {
	Reader

	PutOrganisation(ctx context.Context, o Organisation) error
	// CreateUser stores a new user; ErrDuplicate when the email is taken.
	CreateUser(ctx context.Context, u User) error
	// UpdateUser replaces every stored field of the user with id u.ID;
	// ErrNotFound when there is none.
	UpdateUser(ctx context.Context, u User) error
	// LockUser reads a user and holds the row until the transaction ends,
	// so read-modify-write changes of one account are serialised.
	LockUser(ctx context.Context, id string) (User, error)
	// PutPathway creates or replaces a pathway.
	PutPathway(ctx context.Context, p Pathway) error

	// CreateReferral stores a new referral and its participants;
	// ErrDuplicate when the id is taken.
	CreateReferral(ctx context.Context, r Referral) error
	// LockReferral reads a referral and holds it until the transaction ends,
	// so the commands on one referral are serialised.
	LockReferral(ctx context.Context, id string) (Referral, error)
	// UpdateReferral stores the referral's mutable state: status, priority,
	// form, contact, assignee, outcomes, submitted, due, status-changed,
	// triaged and reminder times, updated time and head seq.
	UpdateReferral(ctx context.Context, r Referral) error
	// AppendEvent stores an event; ErrDuplicate when its seq is taken.
	AppendEvent(ctx context.Context, e Event) error
	// PutPlanSection creates or replaces one section of a referral's plan.
	PutPlanSection(ctx context.Context, referralID string, s PlanSection) error
	// AddParticipant adds a participant; ErrDuplicate when already there.
	AddParticipant(ctx context.Context, referralID string, p Participant) error
	// SetReadMarker raises the user's read marker to seq; a lower seq leaves
	// it as it is.
	SetReadMarker(ctx context.Context, referralID, userID string, seq int64) error

	// RecordCommand stores the record of a command executed in this
	// transaction, result included, so that a repeat of its ref gets that
	// result and changes nothing; ErrDuplicate when the actor has used the
	// ref already. It waits for a concurrent transaction recording the same
	// ref: when that one commits, the ref is taken. The store may send the
	// record with the transaction's next statement or its commit, and
	// report ErrDuplicate there.
	RecordCommand(ctx context.Context, c CommandRecord) error

	WorkflowTx
	IntegrationTx
	WebhookTx

	// AppendAudit links e after the head of chain e.Chain, as
	// AuditEntry.Link does, stores it and moves the head to it. The chain
	// is held until the transaction ends, so its entries are linked one at
	// a time and none is skipped. The store may send the entry with the
	// transaction's next statement or its commit, and report its failure
	// there.
	AppendAudit(ctx context.Context, e AuditEntry) error
}

// Store is the durable state of Patient Pass.
type Store interface {
	Reader
	AuditReader
	SessionStore
	CredentialStore
	AttemptStore
	SchedulerLock
	IntegrationStore
	WebhookStore

	// InTx runs fn in one transaction, committing when fn returns nil and
	// rolling back otherwise. fn's error is returned as it is. Calls must not
	// nest: the embedded store has one writer.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// InTxGroup runs fns one after another in one transaction, with one
	// commit, each keeping its own outcome: a fn that returns an error is
	// undone alone (errs[i]), the others commit. lock names the referrals
	// the fns lock, which the store may lock up front, in an order of its
	// own, so that groups cannot deadlock. When err is not nil the group
	// failed as a whole (a fn failed in a way that cannot be undone alone,
	// or the commit failed) and nothing of it was committed; each fn can be
	// run again. A fn sees what the fns before it in the group wrote.
	InTxGroup(ctx context.Context, lock []string, fns []func(tx Tx) error) (errs []error, err error)
	// GroupsAtOnce is how many groups should run at once: one for a store
	// with a single writer, more where transactions run side by side.
	GroupsAtOnce() int

	// AuditLog lists audit entries matching f, newest first.
	AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	// Setting returns a stored setting.
	Setting(ctx context.Context, key string) (string, error)
	// SetSettingIfAbsent stores value under key unless the key already holds
	// a value, and returns the value stored (the first one written wins, on
	// any node).
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}
