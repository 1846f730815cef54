package rooms_test

import (
	"strings"
	"testing"

	"patientpass/rooms"
)

func TestCheckOutcome(t *testing.T) {
	p := rooms.MSCC("RET")
	booking := func(k string, v any) map[string]any {
		o := map[string]any{"bed_type": "spinal", "ward": "Ward 4", "expected_at": "2026-03-01T14:30:00Z"}
		if v == nil {
			delete(o, k)
		} else {
			o[k] = v
		}
		return o
	}
	tests := []struct {
		name    string
		to      rooms.Status
		outcome map[string]any
		field   string // "" when valid
	}{
		{"accepted with a bed type", "accepted", map[string]any{"bed_type": "oncology"}, ""},
		{"accepted without one", "accepted", map[string]any{}, "outcome.bed_type"},
		{"accepted with a null bed type", "accepted", map[string]any{"bed_type": nil}, "outcome.bed_type"},
		{"accepted with an unknown key", "accepted", map[string]any{"bed_type": "spinal", "notes": "x"}, "outcome.notes"},
		{"accepted with the old booking keys", "accepted", map[string]any{"bed_type": "spinal", "bed": "4"}, "outcome.bed"},
		{"a booking", "transfer_booked", booking("", nil), ""},
		{"a booking for another bed type than accepted", "transfer_booked", booking("bed_type", "neurosurgical"), ""},
		{"a booking without a bed type", "transfer_booked", booking("bed_type", nil), "outcome.bed_type"},
		{"a booking for a bed type the pathway lacks", "transfer_booked", booking("bed_type", "icu"), "outcome.bed_type"},
		{"a booking without a ward", "transfer_booked", booking("ward", nil), "outcome.ward"},
		{"a ward that is a number", "transfer_booked", booking("ward", 4.0), "outcome.ward"},
		{"a ward of 100 characters", "transfer_booked", booking("ward", strings.Repeat("w", 100)), ""},
		{"a ward of 101 characters", "transfer_booked", booking("ward", strings.Repeat("w", 101)), "outcome.ward"},
		{"a ward over two lines", "transfer_booked", booking("ward", "Ward\n4"), "outcome.ward"},
		{"a ward with a bidi override", "transfer_booked", booking("ward", "Ward \u202e4"), "outcome.ward"},
		{"a booking without a time", "transfer_booked", booking("expected_at", nil), "outcome.expected_at"},
		{"a booking time that is a date", "transfer_booked", booking("expected_at", "2026-03-01"), "outcome.expected_at"},
		{"a booking time that is a number", "transfer_booked", booking("expected_at", 1.7e9), "outcome.expected_at"},
		{"a booking with the old keys", "transfer_booked", map[string]any{"bed": "4", "transfer_at": "2026-03-01T14:30:00Z"}, "outcome.bed"},
		{"an arrival", "transferred", map[string]any{"arrived_at": "2026-03-01T15:00:00+00:00"}, ""},
		{"an arrival without its time", "transferred", nil, "outcome.arrived_at"},
		{"an arrival time that is not one", "transferred", map[string]any{"arrived_at": "soon"}, "outcome.arrived_at"},
		{"advice", "managed_remotely", map[string]any{"advice": "Dexamethasone;\nreview in clinic."}, ""},
		{"no advice", "managed_remotely", nil, ""},
		{"advice that is not text", "managed_remotely", map[string]any{"advice": []any{"x"}}, "outcome.advice"},
		{"advice of 10,000 characters", "managed_remotely", map[string]any{"advice": strings.Repeat("a", 10000)}, ""},
		{"advice over 10,000 characters", "managed_remotely", map[string]any{"advice": strings.Repeat("a", 10001)}, "outcome.advice"},
		{"advice with a NUL", "managed_remotely", map[string]any{"advice": "a\x00"}, "outcome.advice"},
		{"100 KB of anything", "managed_remotely", map[string]any{"blob": strings.Repeat("x", 100<<10)}, "outcome.blob"},
		{"a key that is not text", "accepted", map[string]any{"bed_type": "spinal", "\x00": 1.0}, "outcome"},
	}
	for _, to := range []rooms.Status{"submitted", "in_triage", "more_info_needed", "declined", "cancelled"} {
		tests = append(tests,
			struct {
				name    string
				to      rooms.Status
				outcome map[string]any
				field   string
			}{"no outcome moving to " + string(to), to, nil, ""},
			struct {
				name    string
				to      rooms.Status
				outcome map[string]any
				field   string
			}{"any outcome refused moving to " + string(to), to, map[string]any{"bed_type": "spinal"}, "outcome"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.CheckOutcome(p, tt.to, tt.outcome)
			if tt.field == "" {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, tt.field)
			}
		})
	}
}
