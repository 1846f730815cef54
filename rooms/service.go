package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Publisher is told about events after they commit. Publishing is a wake-up
// for other nodes, never the record: a lost publication is repaired from the
// store, so Publish reports no error.
type Publisher interface {
	Publish(ctx context.Context, e Event)
}

// Caller is who is executing a command, and from where.
type Caller struct {
	User       User
	ClientAddr string
	// DisplayID is set when the caller is a wallboard display
	// (DisplayCaller): read-only, refused every command.
	DisplayID string
	// Integration is set when the caller is an integrator client
	// (IntegrationCaller): read-only, refused every command, reading what
	// its organisation's receiving team may read within its scopes.
	Integration *IntegrationGrant
}

// System is the caller for actions taken by the platform itself (command-line
// bootstrap, demo seeding).
var System = Caller{User: User{ID: "system", Name: "Patient Pass", Status: UserActive}}

// Service executes every command on referrals: it validates, authorises, and
// runs one transaction body that appends the event, updates the referral and
// appends the audit entry, committed with the bodies of the commands that
// arrived with it (group.go); then it tells the publisher.
type Service struct {
	store    Store
	clock    Clock
	pub      Publisher
	watch    Watcher
	holidays *Calendar
	node     string
	ids      *notificationIDs
	group    *committer
	webhooks *WebhookDestinations
}

// Config configures a Service. Clock defaults to the system clock and
// Publisher to none.
type Config struct {
	Store     Store
	Clock     Clock
	Publisher Publisher
	// Watcher is told what the workflow's live views must show; none when
	// nil.
	Watcher Watcher
	// Holidays is the bank holiday calendar of triage deadlines; the
	// embedded snapshot when nil.
	Holidays *Calendar
	// Node names this process in audit entries.
	Node string
	// Webhooks is where webhook subscriptions may send (SPEC §10); nil
	// allows public https destinations only.
	Webhooks *WebhookDestinations
}

// NewService returns a Service over cfg.Store.
func NewService(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	return &Service{store: cfg.Store, clock: cfg.Clock, pub: cfg.Publisher, watch: cfg.Watcher, holidays: cfg.Holidays,
		node: cfg.Node, ids: newNotificationIDs(), group: newCommitter(cfg.Store), webhooks: cfg.Webhooks}
}

// Clock returns the service's clock.
func (s *Service) Clock() Clock { return s.clock }

// NewID returns a random identifier (a version 4 UUID).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("read random bytes: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// commandResult is what a command's record remembers.
type commandResult struct {
	ReferralID string `json:"referral_id"`
	Seq        int64  `json:"seq"`
}

// command is the frame shared by every referral command: validation done
// before, the caller's transaction body, and the audit entry either way.
type command struct {
	caller Caller
	kind   string // "referral.message", …
	action AuditAction
	ref    string
	// referralID is empty for a new referral.
	referralID string
	// validate, when set, checks the command's own fields before anything
	// reaches the store; its refusal is audited like any other.
	validate func() error
	// run executes inside the transaction with the referral locked (nil for
	// a new referral) and returns the events appended and the audit detail.
	run func(ctx context.Context, tx Tx, r *Referral) (events []Event, detail string, err error)
}

// execute runs c exactly once per (caller, ref). It returns the events the
// command appended, or, for a repeated ref, the result recorded the first
// time (events nil).
//
// The record of the ref is written last, with the result, in the same
// transaction: a repeat either collides with it (the record of a first
// attempt still running is waited for) or, having met the state the first
// attempt left, fails; either way the recorded result is the answer.
func (s *Service) execute(ctx context.Context, c command) ([]Event, commandResult, error) {
	if err := checkCaller(c.caller); err != nil {
		s.auditRefusal(ctx, c, nil, err)
		return nil, commandResult{}, err
	}
	if err := c.check(); err != nil {
		s.auditRefusal(ctx, c, nil, err)
		return nil, commandResult{}, err
	}
	var (
		events  []Event
		result  commandResult
		current *Referral // for the audit entry of a refusal
		before  Status    // the referral's status before the command
		notes   []Notification
	)
	err := s.inTx(ctx, c.referralID, func(ctx context.Context, tx Tx) error {
		var r *Referral
		if c.referralID != "" {
			locked, err := tx.LockReferral(ctx, c.referralID)
			if errors.Is(err, ErrNotFound) {
				return NotFound("referral")
			}
			if err != nil {
				return fmt.Errorf("lock referral %s: %w", c.referralID, err)
			}
			// A referral the caller may not see is refused as not found,
			// and audited without its patient: the entry is in the
			// caller's organisation's trail, which must not learn who the
			// referral is about, nor that it exists.
			if !CanView(c.caller.User, locked) {
				return NotFound("referral")
			}
			current = &locked
			before = locked.Status
			r = &locked
		}
		evs, detail, err := c.run(ctx, tx, r)
		if err != nil {
			return err
		}
		events = evs
		last := evs[len(evs)-1]
		current = r
		if r == nil {
			created, err := tx.Referral(ctx, last.ReferralID)
			if err != nil {
				return fmt.Errorf("read new referral %s: %w", last.ReferralID, err)
			}
			current = &created
		}
		if notes, err = s.notify(ctx, tx, *current, evs); err != nil {
			return err
		}
		result = commandResult{ReferralID: last.ReferralID, Seq: last.Seq}
		err = tx.RecordCommand(ctx, CommandRecord{ActorID: c.caller.User.ID, Ref: c.ref, Kind: c.kind,
			ReferralID: last.ReferralID, Result: mustJSON(result), At: s.clock.Now()})
		if err != nil {
			return fmt.Errorf("record command %s: %w", c.kind, err)
		}
		return s.appendAudit(ctx, tx, s.entry(c.caller, c.action, c.kind, current, OutcomeSuccess, detail))
	})
	if err != nil {
		prior, done, perr := s.priorResult(ctx, c)
		switch {
		case perr != nil:
			err = perr
		case done:
			return nil, prior, nil
		}
		s.auditRefusal(ctx, c, current, err)
		return nil, commandResult{}, err
	}
	if s.pub != nil {
		for _, e := range events {
			s.pub.Publish(ctx, e)
		}
	}
	s.afterCommit(ctx, before, *current, events, notes)
	return events, result, nil
}

// check validates what c carries before any store sees it.
func (c command) check() error {
	if err := validateRef(c.ref); err != nil {
		return err
	}
	if c.referralID != "" {
		if err := CheckID("referral", c.referralID); err != nil {
			return err
		}
	}
	if c.validate != nil {
		return c.validate()
	}
	return nil
}

// priorResult returns the recorded result of c's ref when it was executed
// before (done true), and an error when the ref was used for a different
// command. A failure to read the record is no answer: done false, no error.
func (s *Service) priorResult(ctx context.Context, c command) (commandResult, bool, error) {
	prior, err := s.store.Command(ctx, c.caller.User.ID, c.ref)
	if err != nil {
		return commandResult{}, false, nil
	}
	if prior.Kind != c.kind || (c.referralID != "" && prior.ReferralID != c.referralID) {
		return commandResult{}, false, Invalid("ref", "this ref was already used for a different command; use a new ref for each command")
	}
	var result commandResult
	if err := json.Unmarshal(prior.Result, &result); err != nil {
		return commandResult{}, false, fmt.Errorf("decode result of command %s: %w", c.kind, err)
	}
	return result, true, nil
}

// auditRefusal records a refused command in a transaction of its own (the
// command's own was rolled back).
func (s *Service) auditRefusal(ctx context.Context, c command, r *Referral, cause error) {
	outcome := OutcomeFailed
	detail := string(CodeOf(cause))
	var de *Error
	if errors.As(cause, &de) {
		switch de.Code {
		case CodeInvalid, CodeConflict:
			outcome = OutcomeInvalid
		case CodeForbidden, CodeNotFound, CodeUnauthenticated:
			outcome = OutcomeDenied
		}
		if de.Field != "" {
			detail += " " + auditSafe(de.Field)
		}
	}
	e := s.entry(c.caller, c.action, c.kind, r, outcome, detail)
	if r == nil && isID(c.referralID) {
		e.ReferralID = c.referralID
	}
	// The refusal is what the caller sees; failing to audit it is logged by
	// the store's caller when the store is down, which Ping reports.
	_ = s.Audit(context.WithoutCancel(ctx), e)
}

// auditSafe returns s for an audit entry's detail when it is clean text, and
// a placeholder otherwise: a field named after a caller's key (form.<key>)
// could hold a NUL, which Postgres cannot store, and the refusal would go
// unaudited.
func auditSafe(s string) string {
	if len(s) <= 100 && isCleanText(s) {
		return s
	}
	return "(unprintable)"
}

// entry builds an audit entry for caller's interaction with r (nil when the
// interaction concerns no referral).
func (s *Service) entry(c Caller, action AuditAction, event string, r *Referral, outcome, detail string) AuditEntry {
	e := AuditEntry{
		At:                s.clock.Now(),
		ActorID:           c.User.ID,
		ActorRegistration: c.User.RegistrationNumber,
		ActorRole:         c.User.PrimaryRole(),
		Action:            action,
		Event:             event,
		Outcome:           outcome,
		Detail:            detail,
		ClientAddr:        c.ClientAddr,
	}
	if r != nil {
		e.ReferralID = r.ID
		e.PatientNHSNumber = r.Patient.NHSNumber
	}
	return e
}

// appendAudit appends e, in the chain of its referral (or actor), inside tx.
func (s *Service) appendAudit(ctx context.Context, tx Tx, e AuditEntry) error {
	key := e.ReferralID
	if key == "" {
		key = e.ActorID
	}
	e.Chain = AuditChainFor(key)
	if e.At.IsZero() {
		e.At = s.clock.Now()
	}
	e.Node = s.node
	if err := tx.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("append audit entry %s: %w", e.Event, err)
	}
	return nil
}

// Audit appends one entry, for interactions that change nothing else, such
// as logins, views and refusals, and returns once it is committed. Entries
// and commands that arrive together share a transaction (group commit, see
// group.go). The service fills in the time (when zero), node, chain and
// hashes.
func (s *Service) Audit(ctx context.Context, e AuditEntry) error {
	return s.inTx(ctx, "", func(ctx context.Context, tx Tx) error { return s.appendAudit(ctx, tx, e) })
}

// AuditCaller appends an entry for caller's interaction with r (nil for
// none).
func (s *Service) AuditCaller(ctx context.Context, c Caller, action AuditAction, event string, r *Referral, outcome, detail string) error {
	return s.Audit(ctx, s.entry(c, action, event, r, outcome, detail))
}

func checkCaller(c Caller) error {
	if c.DisplayID != "" {
		return Forbidden("a wallboard display is read-only")
	}
	if c.Integration != nil {
		return errIntegratorReadOnly
	}
	if c.User.ID == "" {
		return &Error{Code: CodeUnauthenticated, Message: "please log in"}
	}
	if c.User.Status != UserActive {
		return Forbidden("your account is %s", c.User.Status)
	}
	return nil
}

func validateRef(ref string) error {
	if ref == "" {
		return Invalid("ref", "ref is required: a client-generated id that makes retries safe")
	}
	return ruleRef.check("ref", ref)
}

// nextEvent builds the next event of r and advances r's head and time.
func (s *Service) nextEvent(r *Referral, author User, kind EventKind, body any) Event {
	now := s.clock.Now().Truncate(time.Microsecond)
	r.HeadSeq++
	r.UpdatedAt = now
	return Event{ReferralID: r.ID, Seq: r.HeadSeq, Kind: kind, Author: AuthorOf(author), At: now, Body: mustJSON(body)}
}

// appendEvents stores events and the referral's new state, and queues the
// webhooks that tell of them.
func appendEvents(ctx context.Context, tx Tx, r *Referral, events ...Event) error {
	for _, e := range events {
		if err := tx.AppendEvent(ctx, e); err != nil {
			return fmt.Errorf("append %s event to referral %s: %w", e.Kind, r.ID, err)
		}
	}
	if err := tx.UpdateReferral(ctx, *r); err != nil {
		return fmt.Errorf("update referral %s: %w", r.ID, err)
	}
	return queueWebhooks(ctx, tx, *r, events)
}

// executeForEvent executes a command that appends one event and returns that
// event, reading the recorded one when the ref was repeated.
func (s *Service) executeForEvent(ctx context.Context, c command) (Event, error) {
	e, _, err := s.executeEvent(ctx, c)
	return e, err
}

// executeEvent is executeForEvent, also reporting whether this call
// committed the event (fresh) rather than finding a repeated ref's.
func (s *Service) executeEvent(ctx context.Context, c command) (Event, bool, error) {
	events, res, err := s.execute(ctx, c)
	if err != nil {
		return Event{}, false, err
	}
	if events != nil {
		return events[len(events)-1], true, nil
	}
	e, err := s.store.Event(ctx, res.ReferralID, res.Seq)
	if err != nil {
		return Event{}, false, fmt.Errorf("read result event %d of referral %s: %w", res.Seq, res.ReferralID, err)
	}
	return e, false, nil
}
