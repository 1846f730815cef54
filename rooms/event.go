package rooms

import (
	"bytes"
	"encoding/json"
	"time"
)

// EventKind names what happened in a room.
type EventKind string

// The stored room events of SPEC §4. Typing and presence are never stored.
const (
	EventCreated          EventKind = "created"
	EventMessage          EventKind = "message"
	EventPlanEdit         EventKind = "plan_edit"
	EventTransition       EventKind = "transition"
	EventAssigned         EventKind = "assigned"
	EventParticipantAdded EventKind = "participant_added"
	// EventReminder is raised by the triage clocks' scheduler (body
	// ReminderBody).
	EventReminder EventKind = "reminder"
)

// Event is one stored event of a referral's room. Seq numbers a referral's
// events 1, 2, 3 … with no gaps.
type Event struct {
	ReferralID string          `json:"referral"`
	Seq        int64           `json:"seq"`
	Kind       EventKind       `json:"kind"`
	Author     Author          `json:"author"`
	At         time.Time       `json:"at"`
	Body       json.RawMessage `json:"body"`
}

// CreatedBody is the body of a created event.
type CreatedBody struct {
	Pathway  string   `json:"pathway"`
	Priority Priority `json:"priority"`
	Status   Status   `json:"status"`
}

// MessageBody is the body of a message event.
type MessageBody struct {
	Body string `json:"body"`
}

// PlanEditBody is the body of a plan_edit event.
type PlanEditBody struct {
	Section  string `json:"section"`
	Revision int64  `json:"revision"`
	Text     string `json:"text"`
}

// TransitionBody is the body of a transition event.
type TransitionBody struct {
	From    Status         `json:"from"`
	To      Status         `json:"to"`
	Reason  string         `json:"reason,omitempty"`
	Outcome map[string]any `json:"outcome,omitempty"`
	// TriageDueAt is the deadline set by a submission.
	TriageDueAt *time.Time `json:"triage_due_at,omitempty"`
}

// AssignedBody is the body of an assigned event.
type AssignedBody struct {
	AssigneeID   string `json:"assignee_id"`
	AssigneeName string `json:"assignee_name"`
}

// ParticipantAddedBody is the body of a participant_added event.
type ParticipantAddedBody struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

// mustJSON encodes an event body without escaping HTML: json.Marshal would
// write each < > & as six bytes, and a body within its byte budget could
// then outgrow a frame. Bodies are data, never HTML; clients render them as
// text.
func mustJSON(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("marshal event body: " + err.Error()) // bodies are our own plain structs
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
