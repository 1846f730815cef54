package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"patientpass/hub/wire"
	"patientpass/rooms"
)

// The client frames are those a browser sends most: one per message typed
// and one per room opened (or resumed after a reconnect).
var (
	messageFrame   = []byte(`{"type":"message","ref":"c-17","referral":"0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d","body":"Power 4/5 both legs since 06:00; MRI whole spine booked for 14:30"}`)
	subscribeFrame = []byte(`{"type":"subscribe","topic":"referral:0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d","after":41}`)
	planEditFrame  = []byte(`{"type":"plan_edit","ref":"c-18","referral":"0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d","section":"imaging","base_revision":3,"text":"MRI whole spine today; CT chest/abdomen/pelvis to stage"}`)
)

func benchmarkDecode(b *testing.B, frame []byte, wantType string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		f, err := wire.DecodeClientFrame(frame)
		if err != nil || f.Type != wantType {
			b.Fatalf("DecodeClientFrame = %+v, %v", f, err)
		}
	}
}

func BenchmarkDecodeClientFrame(b *testing.B) {
	b.Run("message", func(b *testing.B) { benchmarkDecode(b, messageFrame, wire.TypeMessage) })
	b.Run("subscribe", func(b *testing.B) { benchmarkDecode(b, subscribeFrame, wire.TypeSubscribe) })
	b.Run("plan_edit", func(b *testing.B) { benchmarkDecode(b, planEditFrame, wire.TypePlanEdit) })
}

// messageEvent is a committed message event as the service builds it.
func messageEvent(b *testing.B) rooms.Event {
	b.Helper()
	body, err := json.Marshal(rooms.MessageBody{Body: "Power 4/5 both legs since 06:00; MRI whole spine booked for 14:30"})
	if err != nil {
		b.Fatal(err)
	}
	return rooms.Event{
		ReferralID: "0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d",
		Seq:        42,
		Kind:       rooms.EventMessage,
		Author:     rooms.Author{ID: "5e1d7c2a-3b4f-4e6d-8a9b-0c1d2e3f4a5b", Name: "Dr Asha Patel", Role: rooms.RoleClinician, Organisation: "RJR"},
		At:         time.Date(2026, 11, 20, 16, 0, 0, 123456000, time.UTC),
		Body:       body,
	}
}

// BenchmarkEncodeEventFrame encodes an event frame the way the hub does
// (eventFrame in hub/topic.go): the event is marshalled, then carried as raw
// JSON in the frame. The hub does this once per event per topic on the live
// path, and once per event per subscriber when replaying.
func BenchmarkEncodeEventFrame(b *testing.B) {
	e := messageEvent(b)
	topic := wire.ReferralTopic(e.ReferralID)
	b.Run("event_then_frame", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body, err := json.Marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(wire.ServerFrame{Type: wire.TypeEvent, Topic: topic, Seq: e.Seq, Event: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The frame alone, with the event already encoded: what the second
	// Marshal costs (encoding/json re-validates and copies the raw event).
	b.Run("frame_only", func(b *testing.B) {
		body, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(wire.ServerFrame{Type: wire.TypeEvent, Topic: topic, Seq: e.Seq, Event: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeAckFrame encodes the ack the sender of each command gets.
func BenchmarkEncodeAckFrame(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(wire.ServerFrame{Type: wire.TypeAck, Ref: "c-17", Referral: "0b9c5d2e-8f41-4a6b-9c3d-2e1f0a9b8c7d", Seq: 42}); err != nil {
			b.Fatal(err)
		}
	}
}
