package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NewReferral is the command that creates a referral.
type NewReferral struct {
	Ref                 string
	PathwayID           string
	Priority            Priority
	Submit              bool
	Patient             Patient
	Form                map[string]any
	ContactPhone        string
	ConsultantDiscussed bool
}

// CreateReferral creates a referral as a draft, or submitted when Submit is
// set, with the caller as referrer and first participant.
func (s *Service) CreateReferral(ctx context.Context, c Caller, n NewReferral) (Referral, error) {
	cmd := command{caller: c, kind: "referral.create", action: ActionCreate, ref: n.Ref}
	pw, err := s.validateNewReferral(ctx, c, &n)
	if err != nil {
		s.auditRefusal(ctx, cmd, nil, err)
		return Referral{}, err
	}
	cmd.run = func(ctx context.Context, tx Tx, _ *Referral) ([]Event, string, error) {
		now := s.clock.Now().Truncate(time.Microsecond)
		r := Referral{
			ID:                    NewID(),
			PathwayID:             pw.ID,
			Status:                StatusDraft,
			Priority:              n.Priority,
			Patient:               n.Patient,
			Form:                  n.Form,
			ContactPhone:          n.ContactPhone,
			ConsultantDiscussed:   n.ConsultantDiscussed,
			Referrer:              AuthorOf(c.User),
			ReferringOrganisation: c.User.Organisation,
			ReceivingOrganisation: pw.ReceivingOrganisation,
			CreatedAt:             now,
			UpdatedAt:             now,
			StatusChangedAt:       now,
			Participants:          []Participant{{UserID: c.User.ID, Name: c.User.Name, AddedBy: c.User.ID, AddedAt: now}},
		}
		if err := tx.CreateReferral(ctx, r); err != nil {
			return nil, "", fmt.Errorf("create referral: %w", err)
		}
		events := []Event{s.nextEvent(&r, c.User, EventCreated, CreatedBody{Pathway: pw.ID, Priority: r.Priority, Status: StatusDraft})}
		if n.Submit {
			events = append(events, s.submit(&r, pw, c.User, StatusDraft))
		}
		return events, "status=" + string(r.Status), appendEvents(ctx, tx, &r, events...)
	}
	events, res, err := s.execute(ctx, cmd)
	if err != nil {
		return Referral{}, err
	}
	id := res.ReferralID
	if events != nil {
		id = events[0].ReferralID
	}
	return s.referral(ctx, id)
}

func (s *Service) validateNewReferral(ctx context.Context, c Caller, n *NewReferral) (Pathway, error) {
	if err := checkCaller(c); err != nil {
		return Pathway{}, err
	}
	if !c.User.HasRole(RoleClinician) && !c.User.HasRole(RoleSpecialist) {
		return Pathway{}, Forbidden("only clinicians and specialists can make referrals")
	}
	if err := validateRef(n.Ref); err != nil {
		return Pathway{}, err
	}
	if n.PathwayID == "" {
		return Pathway{}, Invalid("pathway", "pathway is required")
	}
	if err := ruleKey.check("pathway", n.PathwayID); err != nil {
		return Pathway{}, err
	}
	pw, err := s.store.Pathway(ctx, n.PathwayID)
	if errors.Is(err, ErrNotFound) {
		return Pathway{}, Invalid("pathway", "there is no pathway %q", n.PathwayID)
	}
	if err != nil {
		return Pathway{}, fmt.Errorf("read pathway %s: %w", n.PathwayID, err)
	}
	if n.Priority, err = ParsePriority("priority", string(n.Priority)); err != nil {
		return Pathway{}, err
	}
	n.Patient.NHSNumber = NormaliseNHSNumber(n.Patient.NHSNumber)
	n.Patient.Name = strings.TrimSpace(n.Patient.Name)
	if err := n.Patient.Validate(s.clock.Now()); err != nil {
		return Pathway{}, err
	}
	if n.Form == nil {
		n.Form = map[string]any{}
	}
	if err := pw.ValidateForm(n.Form); err != nil {
		return Pathway{}, err
	}
	n.ContactPhone = strings.TrimSpace(n.ContactPhone)
	if n.ContactPhone == "" {
		return Pathway{}, Invalid("contact_phone", "a contact phone number for the referring team is required")
	}
	if err := ruleContactPhone.check("contact_phone", n.ContactPhone); err != nil {
		return Pathway{}, err
	}
	if !n.ConsultantDiscussed {
		return Pathway{}, Invalid("consultant_discussed", "the referral must have been discussed with the responsible consultant")
	}
	return pw, nil
}

// submit moves r to submitted and starts its triage clock.
func (s *Service) submit(r *Referral, pw Pathway, by User, from Status) Event {
	now := s.clock.Now().Truncate(time.Microsecond)
	due := s.holidays.TriageDeadline(pw.Triage, r.Priority, now)
	r.SubmittedAt = &now
	r.TriageDueAt = &due
	r.enterStatus(StatusSubmitted, now)
	return s.nextEvent(r, by, EventTransition, TransitionBody{From: from, To: StatusSubmitted, TriageDueAt: &due})
}

// PostMessage is the command that posts a message in a referral's room.
type PostMessage struct {
	Ref        string
	ReferralID string
	Body       string
}

// PostMessage appends a message to the room.
func (s *Service) PostMessage(ctx context.Context, c Caller, m PostMessage) (Event, error) {
	cmd := command{caller: c, kind: "referral.message", action: ActionCreate, ref: m.Ref, referralID: m.ReferralID,
		validate: func() error { return ruleMessage.check("body", m.Body) }}
	cmd.run = func(ctx context.Context, tx Tx, r *Referral) ([]Event, string, error) {
		e := s.nextEvent(r, c.User, EventMessage, MessageBody{Body: m.Body})
		return []Event{e}, fmt.Sprintf("seq=%d len=%d", e.Seq, len(m.Body)), appendEvents(ctx, tx, r, e)
	}
	return s.executeForEvent(ctx, cmd)
}

// EditPlan is the command that edits one section of a management plan.
type EditPlan struct {
	Ref          string
	ReferralID   string
	Section      string
	BaseRevision int64
	Text         string
}

// EditPlan replaces a plan section's text if nobody has changed it since
// BaseRevision; otherwise it refuses with a conflict carrying the current
// section.
//
// It returns the event and the section's new revision.
func (s *Service) EditPlan(ctx context.Context, c Caller, p EditPlan) (Event, int64, error) {
	cmd := command{caller: c, kind: "referral.plan_edit", action: ActionUpdate, ref: p.Ref, referralID: p.ReferralID,
		validate: func() error {
			if err := ruleKey.check("section", p.Section); err != nil {
				return err
			}
			if err := rulePlanText.check("text", p.Text); err != nil {
				return err
			}
			if p.BaseRevision < 0 {
				return Invalid("base_revision", "base revision cannot be negative")
			}
			return nil
		}}
	var revision int64 // set when this call commits; a repeat reads the stored event
	cmd.run = func(ctx context.Context, tx Tx, r *Referral) ([]Event, string, error) {
		pw, err := tx.Pathway(ctx, r.PathwayID)
		if err != nil {
			return nil, "", fmt.Errorf("read pathway %s: %w", r.PathwayID, err)
		}
		if !pw.HasPlanSection(p.Section) {
			return nil, "", Invalid("section", "%q is not a section of the %s plan", p.Section, pw.Name)
		}
		current := r.Plan.Section(p.Section)
		if current.Revision != p.BaseRevision {
			return nil, "", &Error{Code: CodeConflict, Field: "base_revision", Current: &current,
				Message: "someone else has changed this section since you opened it; review their text and edit again"}
		}
		now := s.clock.Now().Truncate(time.Microsecond)
		next := PlanSection{Name: p.Section, Revision: current.Revision + 1, Text: p.Text, UpdatedBy: c.User.ID, UpdatedAt: now}
		if err := tx.PutPlanSection(ctx, r.ID, next); err != nil {
			return nil, "", fmt.Errorf("store plan section %s: %w", p.Section, err)
		}
		revision = next.Revision
		e := s.nextEvent(r, c.User, EventPlanEdit, PlanEditBody{Section: p.Section, Revision: next.Revision, Text: p.Text})
		return []Event{e}, fmt.Sprintf("section=%s revision=%d", p.Section, next.Revision), appendEvents(ctx, tx, r, e)
	}
	e, fresh, err := s.executeEvent(ctx, cmd)
	if err != nil || fresh {
		return e, revision, err
	}
	var b PlanEditBody
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return Event{}, 0, fmt.Errorf("decode plan edit %d of referral %s: %w", e.Seq, e.ReferralID, err)
	}
	return e, b.Revision, nil
}

// Transition is the command that moves a referral to another status.
type Transition struct {
	Ref        string
	ReferralID string
	To         Status
	Reason     string
	Outcome    map[string]any
}

// Transition moves a referral along the status machine, if the caller may
// make that move.
//
// It returns the event and the referral's new status.
func (s *Service) Transition(ctx context.Context, c Caller, t Transition) (Event, Status, error) {
	cmd := command{caller: c, kind: "referral.transition", action: ActionUpdate, ref: t.Ref, referralID: t.ReferralID,
		validate: func() error {
			if err := ruleReason.check("reason", t.Reason); err != nil {
				return err
			}
			return checkOutcomeText(t.Outcome)
		}}
	outcome := withoutNulls(t.Outcome)
	cmd.run = func(ctx context.Context, tx Tx, r *Referral) ([]Event, string, error) {
		pw, err := tx.Pathway(ctx, r.PathwayID)
		if err != nil {
			return nil, "", fmt.Errorf("read pathway %s: %w", r.PathwayID, err)
		}
		from := r.Status
		if err := CheckTransition(pw, PartiesOf(c.User, *r), from, t.To, t.Reason, outcome); err != nil {
			return nil, "", err
		}
		detail := fmt.Sprintf("from=%s to=%s", from, t.To)
		if t.To == StatusSubmitted {
			e := s.submit(r, pw, c.User, from)
			return []Event{e}, detail, appendEvents(ctx, tx, r, e)
		}
		r.enterStatus(t.To, s.clock.Now().Truncate(time.Microsecond))
		r.mergeOutcome(t.To, outcome)
		if t.To == StatusInTriage && r.AssigneeID == "" {
			r.AssigneeID = c.User.ID // claiming it
		}
		e := s.nextEvent(r, c.User, EventTransition, TransitionBody{From: from, To: t.To, Reason: t.Reason, Outcome: outcome})
		return []Event{e}, detail, appendEvents(ctx, tx, r, e)
	}
	e, fresh, err := s.executeEvent(ctx, cmd)
	if err != nil || fresh {
		return e, t.To, err
	}
	// A repeated ref answers with the first attempt's event, whose target
	// may differ from this request's.
	var b TransitionBody
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return Event{}, "", fmt.Errorf("decode transition %d of referral %s: %w", e.Seq, e.ReferralID, err)
	}
	return e, b.To, nil
}

// AddParticipant is the command that brings a colleague into a referral.
type AddParticipant struct {
	Ref        string
	ReferralID string
	UserID     string
}

// AddParticipant adds a colleague to the room. Participants on the referring
// side may add colleagues of their own organisation; the receiving team may
// add anyone of theirs.
func (s *Service) AddParticipant(ctx context.Context, c Caller, a AddParticipant) (Event, error) {
	cmd := command{caller: c, kind: "referral.participant_add", action: ActionUpdate, ref: a.Ref, referralID: a.ReferralID,
		validate: func() error { return CheckID("user_id", a.UserID) }}
	cmd.run = func(ctx context.Context, tx Tx, r *Referral) ([]Event, string, error) {
		colleague, err := tx.User(ctx, a.UserID)
		if errors.Is(err, ErrNotFound) || (err == nil && colleague.Status != UserActive) {
			return nil, "", Invalid("user_id", "there is no active user with that id")
		}
		if err != nil {
			return nil, "", fmt.Errorf("read user %s: %w", a.UserID, err)
		}
		if colleague.Organisation != c.User.Organisation {
			return nil, "", Forbidden("you can only add colleagues from your own organisation")
		}
		if r.IsParticipant(colleague.ID) {
			return nil, "", Conflict("%s already takes part in this referral", colleague.Name)
		}
		now := s.clock.Now().Truncate(time.Microsecond)
		if err := tx.AddParticipant(ctx, r.ID, Participant{UserID: colleague.ID, Name: colleague.Name, AddedBy: c.User.ID, AddedAt: now}); err != nil {
			return nil, "", fmt.Errorf("add participant to referral %s: %w", r.ID, err)
		}
		e := s.nextEvent(r, c.User, EventParticipantAdded, ParticipantAddedBody{UserID: colleague.ID, Name: colleague.Name})
		return []Event{e}, "participant=" + colleague.ID, appendEvents(ctx, tx, r, e)
	}
	return s.executeForEvent(ctx, cmd)
}

// Assign is the command that gives a referral to a member of the receiving
// team.
type Assign struct {
	Ref        string
	ReferralID string
	AssigneeID string
}

// Assign makes a specialist or coordinator of the receiving organisation
// responsible for a referral. Coordinators and specialists may assign.
func (s *Service) Assign(ctx context.Context, c Caller, a Assign) (Event, error) {
	cmd := command{caller: c, kind: "referral.assign", action: ActionUpdate, ref: a.Ref, referralID: a.ReferralID,
		validate: func() error { return CheckID("assignee_id", a.AssigneeID) }}
	cmd.run = func(ctx context.Context, tx Tx, r *Referral) ([]Event, string, error) {
		if c.User.Organisation != r.ReceivingOrganisation || !(c.User.HasRole(RoleCoordinator) || c.User.HasRole(RoleSpecialist)) {
			return nil, "", Forbidden("only coordinators and specialists of the receiving team can assign referrals")
		}
		assignee, err := tx.User(ctx, a.AssigneeID)
		if errors.Is(err, ErrNotFound) || (err == nil && !(assignee.Status == UserActive && ReceivesFor(assignee, r.ReceivingOrganisation))) {
			return nil, "", Invalid("assignee_id", "the assignee must be an active member of the receiving team")
		}
		if err != nil {
			return nil, "", fmt.Errorf("read user %s: %w", a.AssigneeID, err)
		}
		r.AssigneeID = assignee.ID
		e := s.nextEvent(r, c.User, EventAssigned, AssignedBody{AssigneeID: assignee.ID, AssigneeName: assignee.Name})
		return []Event{e}, "assignee=" + assignee.ID, appendEvents(ctx, tx, r, e)
	}
	return s.executeForEvent(ctx, cmd)
}
