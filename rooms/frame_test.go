package rooms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// maxFrame is wire.MaxFrame (hub/wire/frames.go): no server frame is larger.
const maxFrame = 64 << 10

// worstText returns the longest-encoding text a field allows: as many
// characters as fit, each the costliest to encode that the budget still
// takes (U+2028 is 6 bytes in JSON, an astral letter 4, a quote 2).
func worstText(maxChars, maxBytes int, multiline bool) string {
	var b strings.Builder
	n := 2 // the quotes
	costly := []string{"\u2028", "𝒜", "€", `"`, "a"}
	if !multiline {
		costly = costly[1:]
	}
	for range maxChars {
		for _, c := range costly {
			if cost := rooms.EncodedLen(c) - 2; maxBytes == 0 || n+cost <= maxBytes {
				b.WriteString(c)
				n += cost
				break
			}
		}
	}
	return b.String()
}

// frameSize is the size of e in the event frame the front door sends, by an
// encoder that does not escape HTML, at the largest seq there can be.
func frameSize(t *testing.T, e rooms.Event) int {
	t.Helper()
	e.Author.Name = worstText(rooms.MaxNameLen, 0, false)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	frame := struct {
		Type  string      `json:"type"`
		Topic string      `json:"topic"`
		Seq   int64       `json:"seq"`
		Event rooms.Event `json:"event"`
	}{"event", "referral:" + e.ReferralID, math.MaxInt64, e}
	if err := enc.Encode(frame); err != nil {
		t.Fatal(err)
	}
	return buf.Len()
}

func TestEventFramesFitAtTheWorstCase(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := newWorld(t, s)
	r := w.create(t, "c", rooms.PriorityUrgent)
	other := w.create(t, "c2", rooms.PriorityUrgent)
	fits := func(what string, e rooms.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v; want accepted", what, err)
		}
		if n := frameSize(t, e); n > maxFrame {
			t.Errorf("%s: frame of %d bytes, over %d", what, n, maxFrame)
		}
	}

	body := worstText(rooms.MaxMessageLen, rooms.MaxMessageBytes, true)
	e, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: "m1", ReferralID: r.ID, Body: body})
	fits("the worst message", e, err)
	_, err = w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: "m2", ReferralID: r.ID, Body: body + "a"})
	wantErr(t, err, rooms.CodeInvalid, "body")

	text := worstText(rooms.MaxPlanTextLen, rooms.MaxPlanTextBytes, true)
	e, _, err = w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: "p1", ReferralID: r.ID, Section: "follow_up", Text: text})
	fits("the worst plan text", e, err)
	_, _, err = w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: "p2", ReferralID: r.ID, Section: "follow_up", BaseRevision: 1, Text: text + "a"})
	wantErr(t, err, rooms.CodeInvalid, "text")
	if e := err.(*rooms.Error); e.Message != "plan text is too long (at most 48 KB once encoded)" {
		t.Errorf("message %q", e.Message)
	}
	angles := strings.Repeat("<", rooms.MaxPlanTextLen)
	e, _, err = w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: "p3", ReferralID: r.ID, Section: "imaging", Text: angles})
	fits("20,000 <", e, err)
	if n := frameSize(t, e); n > 25<<10 {
		t.Errorf("20,000 < make a frame of %d bytes; want about 20 KB", n)
	}

	move := func(ref, id string, c rooms.Caller, to rooms.Status, reason string, outcome map[string]any) (rooms.Event, error) {
		e, _, err := w.svc.Transition(ctx, c, rooms.Transition{Ref: ref, ReferralID: id, To: to, Reason: reason, Outcome: outcome})
		return e, err
	}
	reason := worstText(rooms.MaxReasonLen, rooms.MaxReasonBytes, true)
	advice := worstText(rooms.MaxAdviceLen, rooms.MaxAdviceBytes, true)
	if _, err := move("t1", r.ID, w.specialist, rooms.StatusInTriage, "", nil); err != nil {
		t.Fatal(err)
	}
	_, err = move("t2", r.ID, w.specialist, rooms.StatusManagedRemotely, reason+"a", map[string]any{"advice": "x"})
	wantErr(t, err, rooms.CodeInvalid, "reason")
	_, err = move("t3", r.ID, w.specialist, rooms.StatusManagedRemotely, "x", map[string]any{"advice": advice + "a"})
	wantErr(t, err, rooms.CodeInvalid, "outcome.advice")
	e, err = move("t4", r.ID, w.specialist, rooms.StatusManagedRemotely, reason, map[string]any{"advice": advice})
	fits("the worst reason and advice", e, err)

	for _, m := range []struct {
		ref string
		c   rooms.Caller
		to  rooms.Status
		o   map[string]any
	}{
		{"o1", w.specialist, rooms.StatusInTriage, nil},
		{"o2", w.specialist, rooms.StatusAccepted, map[string]any{"bed_type": "neurosurgical"}},
		{"o3", w.bedManager, rooms.StatusTransferBooked, map[string]any{"bed_type": "neurosurgical",
			"ward": worstText(rooms.MaxWardLen, 0, false), "expected_at": "2026-11-21T09:00:00.999999999+01:00"}},
	} {
		e, err = move(m.ref, other.ID, m.c, m.to, reason, m.o)
		fits("the worst move to "+string(m.to), e, err)
	}
}
