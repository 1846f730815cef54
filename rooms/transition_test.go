package rooms_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"patientpass/rooms"
)

// specStatuses is the status column of SPEC §4's status machine.
var specStatuses = []rooms.Status{"draft", "submitted", "in_triage", "more_info_needed", "accepted",
	"managed_remotely", "declined", "transfer_booked", "transferred", "cancelled"}

var specParties = []rooms.Party{"referrer", "specialist", "coordinator", "bed_manager"}

// specMove is one row of SPEC §4's status machine, written out from the SPEC
// rather than from the implementation's table.
type specMove struct {
	by []rooms.Party
	// needs lists the fields a move must carry, in the order they are
	// checked: declined and cancelled need a reason; managed_remotely needs
	// the advice given, carried as the reason; more_info_needed needs the
	// question put to the referrer, carried as the reason; accepted needs a
	// bed type; transfer_booked needs a bed type, the ward and the expected
	// time; transferred needs the arrival time (SPEC §9).
	needs []string
}

type edge struct{ from, to rooms.Status }

var specMoves = func() map[edge]specMove {
	referrer := []rooms.Party{"referrer"}
	specialist := []rooms.Party{"specialist"}
	m := map[edge]specMove{
		{"draft", "submitted"}:            {by: referrer},
		{"more_info_needed", "submitted"}: {by: referrer},
		{"submitted", "in_triage"}:        {by: []rooms.Party{"specialist", "coordinator"}},
		{"submitted", "more_info_needed"}: {by: specialist, needs: []string{"reason"}},
		{"in_triage", "more_info_needed"}: {by: specialist, needs: []string{"reason"}},
		{"in_triage", "accepted"}:         {by: specialist, needs: []string{"outcome.bed_type"}},
		{"in_triage", "managed_remotely"}: {by: specialist, needs: []string{"reason"}},
		{"submitted", "declined"}:         {by: specialist, needs: []string{"reason"}},
		{"in_triage", "declined"}:         {by: specialist, needs: []string{"reason"}},
		{"accepted", "transfer_booked"}: {by: []rooms.Party{"bed_manager", "coordinator"},
			needs: []string{"outcome.bed_type", "outcome.ward", "outcome.expected_at"}},
		{"transfer_booked", "transferred"}: {by: []rooms.Party{"bed_manager", "specialist"}, needs: []string{"outcome.arrived_at"}},
	}
	// Cancelled: by the referrer, reason required, from any status before
	// accepted.
	for _, from := range []rooms.Status{"draft", "submitted", "in_triage", "more_info_needed"} {
		m[edge{from, "cancelled"}] = specMove{by: referrer, needs: []string{"reason"}}
	}
	return m
}()

// fullReason and fullOutcome together carry every detail a move to a status
// may carry.
const fullReason = "MRI shows cord compression at T7; discussed with on-call consultant"

func fullOutcome(to rooms.Status) map[string]any {
	switch to {
	case rooms.StatusAccepted:
		return map[string]any{"bed_type": "spinal"}
	case rooms.StatusTransferBooked:
		return map[string]any{"bed_type": "neurosurgical", "ward": "Ward 4, bed 12", "expected_at": "2026-03-01T14:30:00Z"}
	case rooms.StatusTransferred:
		return map[string]any{"arrived_at": "2026-03-01T15:05:00Z"}
	case rooms.StatusManagedRemotely:
		return map[string]any{"advice": "Dexamethasone 16 mg daily with PPI cover;\nrefer to local oncology."}
	}
	return nil
}

// wantCode fails the test unless err carries code (and, for invalid, names
// field).
func wantCode(t *testing.T, err error, code rooms.Code, field string) {
	t.Helper()
	if code == "" {
		wantValid(t, err)
		return
	}
	if got := rooms.CodeOf(err); got != code {
		t.Fatalf("code = %q (%v), want %q", got, err, code)
	}
	if code == rooms.CodeInvalid {
		wantInvalid(t, err, field)
	}
}

func TestStatusesMatchSpec(t *testing.T) {
	if !slices.Equal(rooms.Statuses, specStatuses) {
		t.Errorf("rooms.Statuses = %v, want SPEC §4's %v", rooms.Statuses, specStatuses)
	}
}

// TestCheckTransitionMatrix tries every (from, to, party) of SPEC §4, once
// with every detail a move could need and once with none.
func TestCheckTransitionMatrix(t *testing.T) {
	p := rooms.MSCC("RET")
	allowed := 0
	for _, from := range specStatuses {
		for _, to := range specStatuses {
			for _, party := range specParties {
				spec, exists := specMoves[edge{from, to}]
				may := exists && slices.Contains(spec.by, party)
				var name string
				switch {
				case !exists:
					name = fmt.Sprintf("no move from %s to %s, even for a %s", from, to, party)
				case may:
					allowed++
					name = fmt.Sprintf("%s may move %s to %s", party, from, to)
				default:
					name = fmt.Sprintf("%s may not move %s to %s", party, from, to)
				}
				t.Run(name, func(t *testing.T) {
					parties := []rooms.Party{party}
					t.Run("with every detail", func(t *testing.T) {
						err := rooms.CheckTransition(p, parties, from, to, fullReason, fullOutcome(to))
						switch {
						case !exists:
							wantCode(t, err, rooms.CodeInvalid, "to")
						case !may:
							wantCode(t, err, rooms.CodeForbidden, "")
						default:
							wantValid(t, err)
						}
					})
					t.Run("with no details", func(t *testing.T) {
						err := rooms.CheckTransition(p, parties, from, to, "", nil)
						switch {
						case !exists:
							wantCode(t, err, rooms.CodeInvalid, "to")
						case !may:
							wantCode(t, err, rooms.CodeForbidden, "")
						case len(spec.needs) == 0:
							wantValid(t, err)
						default:
							wantCode(t, err, rooms.CodeInvalid, spec.needs[0])
						}
					})
				})
			}
		}
	}
	// 15 edges, of which the three into in_triage, transfer_booked and
	// transferred each admit two parties.
	if allowed != 18 {
		t.Errorf("the SPEC table allows %d (from, to, party) moves, want 18", allowed)
	}
}

// TestCheckTransitionDetails drops, one at a time, each detail an allowed move
// needs, and gives bad values for them.
func TestCheckTransitionDetails(t *testing.T) {
	p := rooms.MSCC("RET")
	for e, spec := range specMoves {
		for _, need := range spec.needs {
			t.Run(fmt.Sprintf("%s to %s without %s", e.from, e.to, need), func(t *testing.T) {
				reason, outcome := fullReason, fullOutcome(e.to)
				if need == "reason" {
					reason = ""
				} else {
					delete(outcome, strings.TrimPrefix(need, "outcome."))
				}
				err := rooms.CheckTransition(p, spec.by[:1], e.from, e.to, reason, outcome)
				wantCode(t, err, rooms.CodeInvalid, need)
			})
		}
	}

	specialist := []rooms.Party{rooms.PartySpecialist}
	bedManager := []rooms.Party{rooms.PartyBedManager}
	referrer := []rooms.Party{rooms.PartyReferrer}
	with := func(to rooms.Status, k string, v any) map[string]any {
		o := fullOutcome(to)
		o[k] = v
		return o
	}
	tests := []struct {
		name      string
		parties   []rooms.Party
		from, to  rooms.Status
		reason    string
		outcome   map[string]any
		wantCode  rooms.Code
		wantField string
	}{
		{"a reason of only spaces is no reason", specialist, "in_triage", "declined", " \t\n ", nil, rooms.CodeInvalid, "reason"},
		{"a reason of 10,000 characters is accepted", referrer, "draft", "cancelled", strings.Repeat("x", 10000), nil, "", ""},
		{"a reason over 10,000 characters is refused", referrer, "draft", "cancelled", strings.Repeat("x", 10001), nil, rooms.CodeInvalid, "reason"},
		{"a reason over 10,000 characters is refused even where none is needed", referrer, "draft", "submitted", strings.Repeat("x", 10001), nil, rooms.CodeInvalid, "reason"},
		{"each pathway bed type is accepted: neurosurgical", specialist, "in_triage", "accepted", "", with("accepted", "bed_type", "neurosurgical"), "", ""},
		{"each pathway bed type is accepted: spinal", specialist, "in_triage", "accepted", "", with("accepted", "bed_type", "spinal"), "", ""},
		{"each pathway bed type is accepted: oncology", specialist, "in_triage", "accepted", "", with("accepted", "bed_type", "oncology"), "", ""},
		{"a reason over several lines with tabs is accepted", specialist, "in_triage", "declined", "Not MSCC:\n\tdegenerative disease only.\r\n", nil, "", ""},
		{"a reason containing a NUL byte is refused", specialist, "in_triage", "declined", "no\x00bed", nil, rooms.CodeInvalid, "reason"},
		{"a reason containing an escape character is refused", referrer, "draft", "submitted", "\x1b[2J", nil, rooms.CodeInvalid, "reason"},
		{"a bed type the pathway does not have", specialist, "in_triage", "accepted", "", with("accepted", "bed_type", "icu"), rooms.CodeInvalid, "outcome.bed_type"},
		{"a bed type in the wrong case", specialist, "in_triage", "accepted", "", with("accepted", "bed_type", "Spinal"), rooms.CodeInvalid, "outcome.bed_type"},
		{"a bed type that is not text", specialist, "in_triage", "accepted", "", with("accepted", "bed_type", 3), rooms.CodeInvalid, "outcome.bed_type"},
		{"a ward of only spaces", bedManager, "accepted", "transfer_booked", "", with("transfer_booked", "ward", "   "), rooms.CodeInvalid, "outcome.ward"},
		{"a ward that is not text", bedManager, "accepted", "transfer_booked", "", with("transfer_booked", "ward", 12), rooms.CodeInvalid, "outcome.ward"},
		{"a transfer time that is not a timestamp", bedManager, "accepted", "transfer_booked", "", with("transfer_booked", "expected_at", "tomorrow 2pm"), rooms.CodeInvalid, "outcome.expected_at"},
		{"a transfer date without a time", bedManager, "accepted", "transfer_booked", "", with("transfer_booked", "expected_at", "2026-03-01"), rooms.CodeInvalid, "outcome.expected_at"},
		{"a transfer time with an offset", bedManager, "accepted", "transfer_booked", "", with("transfer_booked", "expected_at", "2026-07-01T14:30:00+01:00"), "", ""},
		{"a party not allowed is forbidden before missing details are checked", referrer, "in_triage", "declined", "", nil, rooms.CodeForbidden, ""},
		{"one allowed party among several suffices", []rooms.Party{rooms.PartyReferrer, rooms.PartyCoordinator}, "submitted", "in_triage", "", nil, "", ""},
		{"no parties at all is forbidden", nil, "submitted", "in_triage", "", nil, rooms.CodeForbidden, ""},
		{"an unknown target status", specialist, "in_triage", "archived", fullReason, fullOutcome("accepted"), rooms.CodeInvalid, "to"},
		{"an empty target status", specialist, "in_triage", "", fullReason, fullOutcome("accepted"), rooms.CodeInvalid, "to"},
		{"an unknown current status", specialist, "archived", "in_triage", fullReason, nil, rooms.CodeInvalid, "to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.CheckTransition(p, tt.parties, tt.from, tt.to, tt.reason, tt.outcome)
			wantCode(t, err, tt.wantCode, tt.wantField)
		})
	}
}

func TestCheckTransitionForbiddenSaysWho(t *testing.T) {
	err := rooms.CheckTransition(rooms.MSCC("RET"), []rooms.Party{rooms.PartyReferrer}, "accepted", "transfer_booked", "", fullOutcome("transfer_booked"))
	var e *rooms.Error
	if !errors.As(err, &e) || e.Code != rooms.CodeForbidden {
		t.Fatalf("got %v, want forbidden", err)
	}
	for _, who := range []string{"bed manager", "coordinator"} {
		if !strings.Contains(e.Message, who) {
			t.Errorf("message %q does not say that a %s may make the move", e.Message, who)
		}
	}
}

func TestPartiesOf(t *testing.T) {
	const receiving = "RET"
	referral := rooms.Referral{
		ID:                    "r1",
		Referrer:              rooms.Author{ID: "creator", Organisation: "RJR"},
		ReferringOrganisation: "RJR",
		ReceivingOrganisation: receiving,
		Participants: []rooms.Participant{
			{UserID: "creator"},
			{UserID: "colleague-rjr"},
			{UserID: "colleague-ren"},
			{UserID: "specialist-ret-added"},
			{UserID: "specialist-ren-added"},
		},
	}
	user := func(id, org string, roles ...rooms.Role) rooms.User {
		return rooms.User{ID: id, Organisation: org, Roles: roles}
	}
	tests := []struct {
		name string
		user rooms.User
		// unlisted drops every participant, as a store might for a
		// referral read without its participants.
		unlisted bool
		want     []rooms.Party
	}{
		{"the creator is the referrer", user("creator", "RJR", rooms.RoleClinician), false, []rooms.Party{"referrer"}},
		{"the creator is the referrer even when not listed as a participant",
			user("creator", "RJR"), true, []rooms.Party{"referrer"}},
		{"a colleague added from the referring organisation is a referrer",
			user("colleague-rjr", "RJR", rooms.RoleClinician), false, []rooms.Party{"referrer"}},
		{"a participant from a third organisation is a referrer",
			user("colleague-ren", "REN", rooms.RoleClinician), false, []rooms.Party{"referrer"}},
		{"a specialist of another organisation who was added is only a referrer",
			user("specialist-ren-added", "REN", rooms.RoleSpecialist), false, []rooms.Party{"referrer"}},
		{"a specialist of another organisation who was not added is nothing",
			user("specialist-ren", "REN", rooms.RoleSpecialist, rooms.RoleCoordinator, rooms.RoleBedManager), false, nil},
		{"a specialist at the receiving organisation is a specialist",
			user("specialist-ret", receiving, rooms.RoleSpecialist), false, []rooms.Party{"specialist"}},
		{"a coordinator at the receiving organisation is a coordinator",
			user("coordinator-ret", receiving, rooms.RoleCoordinator), false, []rooms.Party{"coordinator"}},
		{"a bed manager at the receiving organisation is a bed manager",
			user("bedmanager-ret", receiving, rooms.RoleBedManager), false, []rooms.Party{"bed_manager"}},
		{"every receiving role held is a party",
			user("all-ret", receiving, rooms.RoleBedManager, rooms.RoleCoordinator, rooms.RoleSpecialist), false,
			[]rooms.Party{"specialist", "coordinator", "bed_manager"}},
		{"a receiving specialist added as a participant is not a referrer",
			user("specialist-ret-added", receiving, rooms.RoleSpecialist), false, []rooms.Party{"specialist"}},
		{"an admin at the receiving organisation is no party",
			user("admin-ret", receiving, rooms.RoleAdmin), false, nil},
		{"a clinician at the receiving organisation is no party",
			user("clinician-ret", receiving, rooms.RoleClinician), false, nil},
		{"an outsider is no party", user("outsider", "RBL", rooms.RoleClinician), false, nil},
		{"a user with the creator's organisation but not added is no party",
			user("stranger-rjr", "RJR", rooms.RoleClinician), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := referral
			if tt.unlisted {
				r.Participants = nil
			}
			// The order of parties carries no meaning; compare as sets.
			got := slices.Sorted(slices.Values(rooms.PartiesOf(tt.user, r)))
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("PartiesOf = %v, want %v", got, tt.want)
			}
		})
	}
}
