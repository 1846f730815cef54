package wire

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeClientFrameAcceptsEveryFrameOfTheProtocol(t *testing.T) {
	for _, tc := range []struct {
		frame string
		check func(f ClientFrame) bool
	}{
		{`{"type":"subscribe","topic":"referral:abc","after":12}`, func(f ClientFrame) bool { return f.Topic == "referral:abc" && f.After != nil && *f.After == 12 }},
		{`{"type":"subscribe","topic":"board:mscc"}`, func(f ClientFrame) bool { return f.After == nil }},
		{`{"type":"unsubscribe","topic":"referral:abc"}`, func(f ClientFrame) bool { return f.Type == TypeUnsubscribe }},
		{`{"type":"message","ref":"r1","referral":"abc","body":"MRI attached"}`, func(f ClientFrame) bool { return f.Body == "MRI attached" && f.Ref == "r1" }},
		{`{"type":"plan_edit","ref":"r2","referral":"abc","section":"imaging","base_revision":0,"text":""}`, func(f ClientFrame) bool { return f.Text != nil && *f.BaseRevision == 0 }},
		{`{"type":"transition","ref":"r3","referral":"abc","to":"accepted","reason":"ok","outcome":{"bed_type":"spinal"}}`, func(f ClientFrame) bool { return f.Outcome["bed_type"] == "spinal" }},
		{`{"type":"typing","referral":"abc"}`, func(f ClientFrame) bool { return f.Referral == "abc" }},
		{`{"type":"read","referral":"abc","seq":7}`, func(f ClientFrame) bool { return *f.Seq == 7 }},
	} {
		f, err := DecodeClientFrame([]byte(tc.frame))
		if err != nil || !tc.check(f) {
			t.Errorf("DecodeClientFrame(%s) = %+v, %v", tc.frame, f, err)
		}
	}
}

func TestDecodeClientFrameRefusesBadFramesNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name, frame, field, ref string
	}{
		{"not JSON", `{"type":`, "", ""},
		{"not an object", `[1]`, "", ""},
		{"null", `null`, "", ""},
		{"trailing data", `{"type":"typing","referral":"a"} {}`, "", ""},
		{"no type", `{"referral":"a"}`, "type", ""},
		{"unknown type", `{"type":"shout","ref":"r9"}`, "type", "r9"},
		{"unknown field", `{"type":"typing","referral":"a","colour":"red"}`, "colour", ""},
		{"field of another frame", `{"type":"message","ref":"r1","referral":"a","body":"x","seq":3}`, "seq", "r1"},
		{"missing body", `{"type":"message","ref":"r1","referral":"a"}`, "body", "r1"},
		{"missing base revision", `{"type":"plan_edit","ref":"r2","referral":"a","section":"imaging","text":"x"}`, "base_revision", "r2"},
		{"null required", `{"type":"read","referral":"a","seq":null}`, "seq", ""},
		{"wrong type", `{"type":"read","referral":"a","seq":"seven"}`, "seq", ""},
		{"empty ref", `{"type":"message","ref":" ","referral":"a","body":"x"}`, "ref", " "},
		{"empty topic", `{"type":"subscribe","topic":""}`, "topic", ""},
	} {
		_, err := DecodeClientFrame([]byte(tc.frame))
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != "invalid" || fe.Field != tc.field || fe.Ref != tc.ref {
			t.Errorf("%s: DecodeClientFrame(%s) error = %#v; want invalid naming %q with ref %q", tc.name, tc.frame, err, tc.field, tc.ref)
		}
	}
	if _, err := DecodeClientFrame([]byte("{\"type\":\"typing\",\"referral\":\"\xff\"}")); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	big := `{"type":"message","ref":"r","referral":"a","body":"` + strings.Repeat("x", MaxFrame) + `"}`
	if _, err := DecodeClientFrame([]byte(big)); err == nil {
		t.Error("oversized frame accepted")
	}
}

// FuzzDecodeClientFrame checks that no input panics, that every refusal is
// a *FrameError, and that every accepted frame is valid UTF-8 JSON of a known
// type with its required fields.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"subscribe","topic":"referral:abc","after":12}`,
		`{"type":"message","ref":"r1","referral":"abc","body":"hello"}`,
		`{"type":"plan_edit","ref":"r2","referral":"abc","section":"imaging","base_revision":3,"text":"x"}`,
		`{"type":"transition","ref":"r3","referral":"abc","to":"accepted","outcome":{"bed_type":"spinal","x":[1,{"y":null}]}}`,
		`{"type":"read","referral":"abc","seq":-1}`,
		`{"type":"typing","referral":"abc"}{}`,
		"{\"type\":\"typing\",\"referral\":\"\xed\xa0\x80\"}",
		`{"type":"read","referral":"a","seq":1e400}`,
		`{"type":"subscribe","topic":"x","after":9223372036854775808}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := DecodeClientFrame(data)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Code != "invalid" {
				t.Fatalf("refusal %v is not an invalid *FrameError", err)
			}
			return
		}
		if !utf8.Valid(data) || len(data) > MaxFrame {
			t.Fatalf("accepted invalid UTF-8 or an oversized frame")
		}
		spec, ok := frameFields[frame.Type]
		if !ok {
			t.Fatalf("accepted unknown type %q", frame.Type)
		}
		if contains(spec.required, "referral") && strings.TrimSpace(frame.Referral) == "" {
			t.Fatalf("accepted a %s frame without a referral", frame.Type)
		}
		if contains(spec.required, "seq") && frame.Seq == nil {
			t.Fatalf("accepted a read frame without seq")
		}
	})
}
