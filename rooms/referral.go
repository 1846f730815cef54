package rooms

import "time"

// Status is where a referral stands in its journey.
type Status string

// The statuses of SPEC §4.
const (
	StatusDraft           Status = "draft"
	StatusSubmitted       Status = "submitted"
	StatusInTriage        Status = "in_triage"
	StatusMoreInfoNeeded  Status = "more_info_needed"
	StatusAccepted        Status = "accepted"
	StatusManagedRemotely Status = "managed_remotely"
	StatusDeclined        Status = "declined"
	StatusTransferBooked  Status = "transfer_booked"
	StatusTransferred     Status = "transferred"
	StatusCancelled       Status = "cancelled"
)

// Statuses lists every status in journey order.
var Statuses = []Status{StatusDraft, StatusSubmitted, StatusInTriage, StatusMoreInfoNeeded,
	StatusAccepted, StatusManagedRemotely, StatusDeclined, StatusTransferBooked,
	StatusTransferred, StatusCancelled}

// FHIRTaskStatus is the FHIR R4 Task.status the status is exported as.
func (s Status) FHIRTaskStatus() string {
	switch s {
	case StatusDraft:
		return "draft"
	case StatusSubmitted:
		return "requested"
	case StatusInTriage:
		return "received"
	case StatusMoreInfoNeeded:
		return "on-hold"
	case StatusAccepted:
		return "accepted"
	case StatusManagedRemotely, StatusTransferred:
		return "completed"
	case StatusDeclined:
		return "rejected"
	case StatusTransferBooked:
		return "in-progress"
	case StatusCancelled:
		return "cancelled"
	}
	return "unknown"
}

// AwaitingTriage reports whether a referral in this status is on the triage
// clock.
func (s Status) AwaitingTriage() bool { return s == StatusSubmitted || s == StatusInTriage }

// Priority is how urgently a referral must be triaged.
type Priority string

// The priorities of SPEC §4.
const (
	PriorityEmergency Priority = "emergency"
	PriorityUrgent    Priority = "urgent"
	PriorityRoutine   Priority = "routine"
)

// ParsePriority returns the priority named s or an invalid error naming field.
func ParsePriority(field, s string) (Priority, error) {
	switch p := Priority(s); p {
	case PriorityEmergency, PriorityUrgent, PriorityRoutine:
		return p, nil
	}
	return "", Invalid(field, "priority must be emergency, urgent or routine")
}

// Patient identifies the person being referred.
type Patient struct {
	NHSNumber   string `json:"nhs_number"`
	Name        string `json:"name"`
	DateOfBirth string `json:"date_of_birth"`
	Sex         string `json:"sex"`
}

// Validate checks the patient's identifiers; now bounds the date of birth.
func (p Patient) Validate(now time.Time) error {
	if err := ValidateNHSNumber("patient.nhs_number", p.NHSNumber); err != nil {
		return err
	}
	if err := checkName("patient.name", "patient name", p.Name); err != nil {
		return err
	}
	dob, err := time.Parse(time.DateOnly, p.DateOfBirth)
	if err != nil {
		return Invalid("patient.date_of_birth", "date of birth must be a date such as 1956-04-30")
	}
	if dob.After(now) || dob.Year() < 1880 {
		return Invalid("patient.date_of_birth", "date of birth must be in the past")
	}
	switch p.Sex {
	case "female", "male", "other", "unknown":
	default:
		return Invalid("patient.sex", "sex must be female, male, other or unknown")
	}
	return nil
}

// Participant is a user taking part in a referral's room.
type Participant struct {
	UserID  string    `json:"user_id"`
	Name    string    `json:"name"`
	AddedBy string    `json:"added_by"`
	AddedAt time.Time `json:"added_at"`
}

// Referral is one patient's referral into a pathway: a live room.
type Referral struct {
	ID                    string         `json:"id"`
	PathwayID             string         `json:"pathway"`
	Status                Status         `json:"status"`
	Priority              Priority       `json:"priority"`
	Patient               Patient        `json:"patient"`
	Form                  map[string]any `json:"form"`
	ContactPhone          string         `json:"contact_phone"`
	ConsultantDiscussed   bool           `json:"consultant_discussed"`
	Referrer              Author         `json:"referrer"`
	ReferringOrganisation string         `json:"referring_organisation"`
	ReceivingOrganisation string         `json:"receiving_organisation"`
	AssigneeID            string         `json:"assignee_id,omitempty"`
	// Outcomes holds, by status, the outcome of the move into it (the bed
	// type accepted for, the transfer booked, the arrival, the advice
	// given). A later move to another status adds its own and never
	// overwrites an earlier one.
	Outcomes    map[Status]map[string]any `json:"outcomes,omitempty"`
	SubmittedAt *time.Time                `json:"submitted_at,omitempty"`
	TriageDueAt *time.Time                `json:"triage_due_at"`
	// StatusChangedAt is when the referral entered its status.
	StatusChangedAt time.Time `json:"status_changed_at"`
	// TriagedAt is when the triage clock stopped: the first decision
	// (more information asked for, accepted, managed remotely, declined,
	// cancelled) after the latest submission; nil while it runs.
	TriagedAt *time.Time `json:"triaged_at,omitempty"`
	// ReminderAt is when the scheduler next has a reminder to raise for
	// the referral; nil when none is due.
	ReminderAt   *time.Time    `json:"-"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	HeadSeq      int64         `json:"head_seq"`
	Plan         Plan          `json:"plan"`
	Participants []Participant `json:"participants"`
}

// IsParticipant reports whether the user takes part in the referral.
func (r Referral) IsParticipant(userID string) bool {
	for _, p := range r.Participants {
		if p.UserID == userID {
			return true
		}
	}
	return false
}

// ReferralFilter selects referrals. A referral is visible when the user
// VisibleToUser takes part in it, or, when VisibleToOrganisation is set, when
// that organisation receives it. Empty fields do not filter.
type ReferralFilter struct {
	VisibleToUser         string
	VisibleToOrganisation string
	Status                []Status
	PathwayID             string
	Priority              Priority
	// ReceivingOrganisation, when set, keeps only the referrals that
	// organisation receives (unlike VisibleToOrganisation, it is not
	// widened by VisibleToUser).
	ReceivingOrganisation string
	// UpdatedSince, when set, keeps only referrals updated at or after it.
	UpdatedSince time.Time
	// ByChange orders by updated time, then id, oldest first, instead of by
	// triage deadline: the order of a sync feed (the FHIR _lastUpdated
	// search), in which every change of a referral moves it to the end.
	ByChange bool
	// ChangedAfter, when set, keeps only referrals after it in ByChange
	// order: the cursor of a feed's next page.
	ChangedAfter *ChangeCursor
	// ChangedBefore, when set, keeps only referrals updated before it.
	ChangedBefore time.Time
	// Limit caps the result; zero means the store's default of 500.
	Limit int
}

// ChangeCursor is a place in ByChange order: a referral's updated time and
// id.
type ChangeCursor struct {
	UpdatedAt time.Time
	ID        string
}
