// Package wire holds the WebSocket frames of SPEC §6: what clients send and
// what the server answers. It depends on nothing of ours, so the Go client
// and the load tool can speak the protocol without the server's code.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxFrame is the largest frame either side sends, in bytes.
const MaxFrame = 64 << 10

// Client frame types.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeMessage     = "message"
	TypePlanEdit    = "plan_edit"
	TypeTransition  = "transition"
	TypeTyping      = "typing"
	TypeRead        = "read"
)

// Server frame types.
const (
	TypeSubscribed = "subscribed"
	TypeEvent      = "event"
	TypeAck        = "ack"
	TypeError      = "error"
	TypePresence   = "presence"
	TypeSnapshot   = "snapshot"
	TypeUpdate     = "update"
)

// ClientFrame is one frame from a client. Which fields may be set depends on
// Type; DecodeClientFrame refuses any other.
type ClientFrame struct {
	Type         string         `json:"type"`
	Topic        string         `json:"topic,omitempty"`
	After        *int64         `json:"after,omitempty"`
	Ref          string         `json:"ref,omitempty"`
	Referral     string         `json:"referral,omitempty"`
	Body         string         `json:"body,omitempty"`
	Section      string         `json:"section,omitempty"`
	BaseRevision *int64         `json:"base_revision,omitempty"`
	Text         *string        `json:"text,omitempty"`
	To           string         `json:"to,omitempty"`
	Reason       string         `json:"reason,omitempty"`
	Outcome      map[string]any `json:"outcome,omitempty"`
	Seq          *int64         `json:"seq,omitempty"`
}

// frameFields lists, per type, the fields a frame may carry and those it must.
var frameFields = map[string]struct{ allowed, required []string }{
	TypeSubscribe:   {allowed: []string{"topic", "after"}, required: []string{"topic"}},
	TypeUnsubscribe: {allowed: []string{"topic"}, required: []string{"topic"}},
	TypeMessage:     {allowed: []string{"ref", "referral", "body"}, required: []string{"ref", "referral", "body"}},
	TypePlanEdit:    {allowed: []string{"ref", "referral", "section", "base_revision", "text"}, required: []string{"ref", "referral", "section", "base_revision", "text"}},
	TypeTransition:  {allowed: []string{"ref", "referral", "to", "reason", "outcome"}, required: []string{"ref", "referral", "to"}},
	TypeTyping:      {allowed: []string{"referral"}, required: []string{"referral"}},
	TypeRead:        {allowed: []string{"referral", "seq"}, required: []string{"referral", "seq"}},
}

// FrameError is a refused frame: the code of SPEC §5 ("invalid"), a message,
// the field at fault, and the frame's ref when it could be read.
type FrameError struct {
	Code    string
	Message string
	Field   string
	Ref     string
}

func (e *FrameError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

func invalid(field, ref, format string, args ...any) *FrameError {
	return &FrameError{Code: "invalid", Field: field, Ref: ref, Message: fmt.Sprintf(format, args...)}
}

// DecodeClientFrame reads one client frame strictly: valid UTF-8, one JSON
// object of at most MaxFrame bytes, a known type, only that type's fields,
// all of its required ones, and nothing after the object. Every refusal is a
// *FrameError.
func DecodeClientFrame(data []byte) (ClientFrame, error) {
	var f ClientFrame
	if len(data) > MaxFrame {
		return f, invalid("", "", "frame is larger than %d bytes", MaxFrame)
	}
	if !utf8.Valid(data) {
		return f, invalid("", "", "frame is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := decodeOne(data, &fields); err != nil || fields == nil {
		return f, invalid("", "", "frame must be one JSON object")
	}
	// The ref is read first so a refusal can name the command it refuses.
	var ref string
	if raw, ok := fields["ref"]; ok {
		_ = json.Unmarshal(raw, &ref)
	}
	var typ string
	if err := json.Unmarshal(fields["type"], &typ); err != nil || typ == "" {
		return f, invalid("type", ref, "frame needs a type")
	}
	spec, ok := frameFields[typ]
	if !ok {
		return f, invalid("type", ref, "%q is not a frame type", typ)
	}
	for name := range fields {
		if name != "type" && !contains(spec.allowed, name) {
			return f, invalid(name, ref, "%q is not a field of a %s frame", name, typ)
		}
	}
	for _, name := range spec.required {
		if raw, ok := fields[name]; !ok || string(raw) == "null" {
			return f, invalid(name, ref, "a %s frame needs %s", typ, name)
		}
	}
	if err := decodeOne(data, &f); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return f, invalid(typeErr.Field, ref, "%s has the wrong type", typeErr.Field)
		}
		return f, invalid("", ref, "frame could not be read")
	}
	for _, s := range []struct{ name, value string }{{"ref", f.Ref}, {"referral", f.Referral}, {"topic", f.Topic}} {
		if _, set := fields[s.name]; set && strings.TrimSpace(s.value) == "" {
			return f, invalid(s.name, ref, "%s cannot be empty", s.name)
		}
	}
	return f, nil
}

// decodeOne decodes exactly one JSON value with nothing after it.
func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the frame")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Close codes of SPEC §6, beside the standard 1001 (going away).
const (
	// CloseSessionEnded: the session was ended (logout, expiry, suspension);
	// log in again.
	CloseSessionEnded = 4001
	// CloseForbidden: the user may no longer use this connection.
	CloseForbidden = 4003
	// CloseTooSlow: the client did not read fast enough; reconnect and
	// resume from the last seq.
	CloseTooSlow = 4008
	// CloseGoingAway: the server is shutting down; reconnect (to another
	// node) and resume.
	CloseGoingAway = 1001
)

// Person is a user as others in a room see them.
type Person struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ServerFrame is any frame the server sends; which fields are set depends
// on Type. Event is the stored event as the REST API shows it.
type ServerFrame struct {
	Type string `json:"type"`
	// Topic is set on subscribed, event, presence, typing, snapshot and
	// update frames.
	Topic string `json:"topic,omitempty"`
	// Head is the latest seq of a subscribed topic.
	Head *int64 `json:"head,omitempty"`
	// Seq is an event's seq, or the seq an ack's command produced.
	Seq   int64           `json:"seq,omitempty"`
	Event json.RawMessage `json:"event,omitempty"`
	// Ref names the command an ack or error answers.
	Ref      string `json:"ref,omitempty"`
	Referral string `json:"referral,omitempty"`
	// Code, Message and Field describe a refusal; Current carries the
	// current plan section of a conflict.
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Field   string          `json:"field,omitempty"`
	Current json.RawMessage `json:"current,omitempty"`
	// Users is who is in the room (presence); User who is typing.
	Users []Person `json:"users,omitempty"`
	User  *Person  `json:"user,omitempty"`
	// Data is the body of a snapshot or update.
	Data json.RawMessage `json:"data,omitempty"`
}

// ReferralTopic is the topic of a referral's room.
func ReferralTopic(referralID string) string { return "referral:" + referralID }
