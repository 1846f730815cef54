package rooms

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// The kinds of notification.
const (
	NotifySubmitted   = "referral_submitted"
	NotifyStatus      = "status_changed"
	NotifyMessage     = "message"
	NotifyPlanEdit    = "plan_edit"
	NotifyAssigned    = "assigned"
	NotifyParticipant = "participant_added"
	NotifyReminder    = "reminder"
)

// UserUpdate is what a user's live feed is told: a new notification, or how
// many remain unread after some were marked read (on another tab or node).
type UserUpdate struct {
	Notification *Notification `json:"notification,omitempty"`
	Unread       *int          `json:"unread,omitempty"`
}

// UserFeed is the snapshot of a user's live feed (topic "user").
type UserFeed struct {
	Unread int            `json:"unread"`
	Latest []Notification `json:"latest"`
}

// notificationIDs makes notification ids that sort by time: sixteen hex
// digits of microseconds, then a per-process counter and a per-process
// random part, so ids made at the same instant by one process keep their
// order and ids from two processes never collide.
type notificationIDs struct {
	process uint32
	counter atomic.Uint32
}

func newNotificationIDs() *notificationIDs {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("read random bytes: " + err.Error())
	}
	return &notificationIDs{process: binary.BigEndian.Uint32(b[:])}
}

func (g *notificationIDs) next(at time.Time) string {
	return fmt.Sprintf("%016x%08x%08x", at.UnixMicro(), g.counter.Add(1), g.process)
}

// isNotificationID reports whether id has the shape next makes.
func isNotificationID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// recipients collects the users to notify, once each, never the author.
type recipients struct {
	author string
	ids    []string
	seen   map[string]bool
}

func newRecipients(author string) *recipients {
	return &recipients{author: author, seen: map[string]bool{}}
}

func (rs *recipients) add(ids ...string) {
	for _, id := range ids {
		if id == "" || id == rs.author || rs.seen[id] {
			continue
		}
		rs.seen[id] = true
		rs.ids = append(rs.ids, id)
	}
}

// participantIDs are the user ids of r's participants.
func participantIDs(r Referral) []string {
	ids := make([]string, len(r.Participants))
	for i, p := range r.Participants {
		ids[i] = p.UserID
	}
	return ids
}

// notify writes, in tx, the notifications that r's new events make (SPEC
// §9): a submission goes to the receiving organisation's coordinators and
// specialists; a status change, message or plan edit to the participants
// and the assignee, never the author; an assignment to the assignee; a new
// participant to that participant.
func (s *Service) notify(ctx context.Context, tx Tx, r Referral, events []Event) ([]Notification, error) {
	var ns []Notification
	for _, e := range events {
		rs := newRecipients(e.Author.ID)
		var kind, title string
		ref := shortRef(r.ID)
		switch e.Kind {
		case EventTransition:
			b, err := decodeBody[TransitionBody](e)
			if err != nil {
				return nil, err
			}
			kind, title = NotifyStatus, fmt.Sprintf("Referral %s is now %s", ref, humanStatus(b.To))
			if b.To == StatusSubmitted {
				team, err := s.receivingTeam(ctx, tx, r.ReceivingOrganisation, RoleCoordinator, RoleSpecialist)
				if err != nil {
					return nil, err
				}
				rs.add(team...)
				kind = NotifySubmitted
				title = fmt.Sprintf("New %s %s referral %s", r.Priority, strings.ToUpper(r.PathwayID), ref)
			}
			rs.add(participantIDs(r)...)
			rs.add(r.AssigneeID)
		case EventMessage:
			kind, title = NotifyMessage, fmt.Sprintf("Message from %s on %s", e.Author.Name, ref)
			rs.add(participantIDs(r)...)
			rs.add(r.AssigneeID)
		case EventPlanEdit:
			b, err := decodeBody[PlanEditBody](e)
			if err != nil {
				return nil, err
			}
			kind, title = NotifyPlanEdit, fmt.Sprintf("%s edited the plan (%s) on %s", e.Author.Name, humanStatus(Status(b.Section)), ref)
			rs.add(participantIDs(r)...)
			rs.add(r.AssigneeID)
		case EventAssigned:
			b, err := decodeBody[AssignedBody](e)
			if err != nil {
				return nil, err
			}
			kind, title = NotifyAssigned, fmt.Sprintf("%s assigned referral %s to you", e.Author.Name, ref)
			rs.add(b.AssigneeID)
		case EventParticipantAdded:
			b, err := decodeBody[ParticipantAddedBody](e)
			if err != nil {
				return nil, err
			}
			kind, title = NotifyParticipant, fmt.Sprintf("%s added you to referral %s", e.Author.Name, ref)
			rs.add(b.UserID)
		case EventReminder:
			b, err := decodeBody[ReminderBody](e)
			if err != nil {
				return nil, err
			}
			kind, title = NotifyReminder, reminderTitle(b.Reason, r)
			if b.Reason.ForReferrer() {
				for _, p := range r.Participants {
					if p.UserID == r.Referrer.ID || !s.inOrganisation(ctx, tx, p.UserID, r.ReceivingOrganisation) {
						rs.add(p.UserID)
					}
				}
			} else {
				team, err := s.receivingTeam(ctx, tx, r.ReceivingOrganisation, RoleCoordinator)
				if err != nil {
					return nil, err
				}
				rs.add(team...)
			}
		default:
			continue
		}
		for _, uid := range rs.ids {
			ns = append(ns, Notification{ID: s.ids.next(e.At), UserID: uid, Kind: kind, ReferralID: r.ID,
				Seq: e.Seq, At: e.At, Title: title})
		}
	}
	if len(ns) == 0 {
		return nil, nil
	}
	if err := tx.AddNotifications(ctx, ns); err != nil {
		return nil, fmt.Errorf("store notifications of referral %s: %w", r.ID, err)
	}
	return ns, nil
}

func reminderTitle(reason ReminderReason, r Referral) string {
	ref := shortRef(r.ID)
	switch reason {
	case ReminderDueSoon:
		return fmt.Sprintf("Triage due soon: %s referral %s", r.Priority, ref)
	case ReminderBreached:
		return fmt.Sprintf("Triage deadline passed: %s referral %s", r.Priority, ref)
	case ReminderBreachedAgain:
		return fmt.Sprintf("Still not triaged: %s referral %s", r.Priority, ref)
	case ReminderMoreInfo24h:
		return fmt.Sprintf("More information still needed for referral %s (24 hours)", ref)
	default:
		return fmt.Sprintf("More information still needed for referral %s (48 hours)", ref)
	}
}

// receivingTeam returns the ids of the active users of organisation holding
// any of roles.
func (s *Service) receivingTeam(ctx context.Context, tx Tx, organisation string, roles ...Role) ([]string, error) {
	us, err := tx.Users(ctx, UserFilter{Organisation: organisation, Status: UserActive})
	if err != nil {
		return nil, fmt.Errorf("list users of %s: %w", organisation, err)
	}
	var ids []string
	for _, u := range us {
		for _, role := range roles {
			if u.HasRole(role) {
				ids = append(ids, u.ID)
				break
			}
		}
	}
	return ids, nil
}

// inOrganisation reports whether the user belongs to organisation; an
// unreadable user is taken as not.
func (s *Service) inOrganisation(ctx context.Context, tx Tx, userID, organisation string) bool {
	u, err := tx.User(ctx, userID)
	return err == nil && u.Organisation == organisation
}

func decodeBody[T any](e Event) (T, error) {
	var b T
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return b, fmt.Errorf("decode %s body of event %d of referral %s: %w", e.Kind, e.Seq, e.ReferralID, err)
	}
	return b, nil
}

// maxNotificationsListed bounds one listing.
const maxNotificationsListed = 200

// Notifications lists the caller's notifications, newest first, and how
// many are unread.
func (s *Service) Notifications(ctx context.Context, c Caller, unreadOnly bool, limit int) ([]Notification, int, error) {
	if err := checkCaller(c); err != nil {
		return nil, 0, err
	}
	if limit < 0 || limit > maxNotificationsListed {
		return nil, 0, Invalid("limit", "limit must be between 1 and %d", maxNotificationsListed)
	}
	if limit == 0 {
		limit = 50
	}
	ns, err := s.store.Notifications(ctx, c.User.ID, NotificationFilter{UnreadOnly: unreadOnly, Limit: limit})
	if err != nil {
		return nil, 0, fmt.Errorf("list notifications: %w", err)
	}
	unread, err := s.store.UnreadNotifications(ctx, c.User.ID)
	if err != nil {
		return nil, 0, fmt.Errorf("count unread notifications: %w", err)
	}
	if err := s.AuditCaller(ctx, c, ActionRead, "notification.list", nil, OutcomeSuccess, fmt.Sprintf("count=%d", len(ns))); err != nil {
		return nil, 0, err
	}
	return ns, unread, nil
}

// UserFeed is the snapshot of the caller's live feed: the unread count and
// the latest notifications.
func (s *Service) UserFeed(ctx context.Context, c Caller) (UserFeed, error) {
	ns, unread, err := s.Notifications(ctx, c, false, 20)
	if err != nil {
		return UserFeed{}, err
	}
	if ns == nil {
		ns = []Notification{}
	}
	return UserFeed{Unread: unread, Latest: ns}, nil
}

// maxReadIDs bounds the ids one call may mark read.
const maxReadIDs = 500

// MarkNotificationsRead marks the caller's notifications read: every one up
// to and including upTo (the newest the caller has seen), and those named
// in ids. It returns how many remain unread, and tells the caller's other
// screens.
func (s *Service) MarkNotificationsRead(ctx context.Context, c Caller, upTo string, ids []string) (int, error) {
	if err := s.refuseIntegrator(ctx, c, ActionUpdate, "notification.read"); err != nil {
		return 0, err
	}
	if err := checkCaller(c); err != nil {
		return 0, err
	}
	if upTo == "" && len(ids) == 0 {
		return 0, Invalid("up_to", "name the newest notification read (up_to) or the ids to mark read")
	}
	if upTo != "" && !isNotificationID(upTo) {
		return 0, Invalid("up_to", "up_to is not a notification id")
	}
	if len(ids) > maxReadIDs {
		return 0, Invalid("ids", "at most %d ids at a time", maxReadIDs)
	}
	for i, id := range ids {
		if !isNotificationID(id) {
			return 0, Invalid(fmt.Sprintf("ids[%d]", i), "not a notification id")
		}
	}
	var marked, unread int
	err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		if marked, err = tx.MarkNotificationsRead(ctx, c.User.ID, upTo, ids); err != nil {
			return fmt.Errorf("mark notifications read: %w", err)
		}
		if unread, err = tx.UnreadNotifications(ctx, c.User.ID); err != nil {
			return fmt.Errorf("count unread notifications: %w", err)
		}
		return s.appendAudit(ctx, tx, s.entry(c, ActionUpdate, "notification.read", nil, OutcomeSuccess, fmt.Sprintf("marked=%d", marked)))
	})
	if err != nil {
		return 0, err
	}
	s.watching().Notified(c.User.ID, UserUpdate{Unread: &unread})
	return unread, nil
}
