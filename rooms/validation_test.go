package rooms_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"patientpass/rooms"
)

// TestMalformedInputIsRefusedAndAudited sends NUL bytes, bytes that are not
// UTF-8 and hidden controls through every entry point: each is refused as
// invalid naming the field, before a store sees it (Postgres would answer
// an internal error), and the refusal is audited.
func TestMalformedInputIsRefusedAndAudited(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityUrgent)
		admin := w.admin(t)
		nul, notUTF8 := r.ID[:35]+"\x00", r.ID[:35]+"\xff"
		message := func(id, body string) error {
			_, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: rooms.NewID(), ReferralID: id, Body: body})
			return err
		}
		move := func(reason string, outcome map[string]any) error {
			_, _, err := w.svc.Transition(ctx, w.specialist, rooms.Transition{Ref: rooms.NewID(), ReferralID: r.ID, To: rooms.StatusInTriage, Reason: reason, Outcome: outcome})
			return err
		}
		create := func(edit func(n *rooms.NewReferral)) error {
			n := newReferral(rooms.NewID(), rooms.PriorityUrgent, true)
			edit(&n)
			_, err := w.svc.CreateReferral(ctx, w.referrer, n)
			return err
		}
		newUser := func(name, email string) rooms.NewUser {
			return rooms.NewUser{Name: name, Email: email, ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7123456",
				Organisation: "RJR", Roles: []rooms.Role{rooms.RoleClinician}, Status: rooms.UserActive, PasswordHash: "x"}
		}
		register := func(name, email string) error {
			_, err := w.svc.Register(ctx, "127.0.0.1", newUser(name, email))
			return err
		}
		cases := []struct {
			name, event, field string
			call               func() error
		}{
			{"a referral id with a NUL, viewed", "referral.view", "referral", func() error { _, err := w.svc.Referral(ctx, w.specialist, nul); return err }},
			{"a referral id that is not UTF-8, viewed", "referral.view", "referral", func() error { _, err := w.svc.Referral(ctx, w.specialist, notUTF8); return err }},
			{"a referral id with a NUL, events read", "referral.events", "referral", func() error { _, _, err := w.svc.Events(ctx, w.specialist, nul, 0, 10); return err }},
			{"a referral id with a NUL, subscribed", "referral.subscribe", "referral", func() error { _, err := w.svc.Subscribe(ctx, w.specialist, nul, 0); return err }},
			{"a referral id with a NUL, authorised", "referral.typing", "referral", func() error { _, err := w.svc.Authorize(ctx, w.specialist, nul, "referral.typing"); return err }},
			{"a referral id with a NUL, marked read", "referral.read_marker", "referral", func() error { return w.svc.MarkRead(ctx, w.specialist, nul, 1) }},
			{"a referral id with a NUL, messaged", "referral.message", "referral", func() error { return message(nul, "hello") }},
			{"a referral id that is not UTF-8, messaged", "referral.message", "referral", func() error { return message(notUTF8, "hello") }},
			{"a message with a NUL", "referral.message", "body", func() error { return message(r.ID, "a\x00b") }},
			{"a message that is not UTF-8", "referral.message", "body", func() error { return message(r.ID, "a\xffb") }},
			{"a message with a C1 control", "referral.message", "body", func() error { return message(r.ID, "a\u0085b") }},
			{"a message with a bidi override", "referral.message", "body", func() error { return message(r.ID, "a\u202eb") }},
			{"a ref with a NUL", "referral.message", "ref", func() error {
				_, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: "r\x00", ReferralID: r.ID, Body: "x"})
				return err
			}},
			{"plan text that is not UTF-8", "referral.plan_edit", "text", func() error {
				_, _, err := w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: rooms.NewID(), ReferralID: r.ID, Section: "imaging", Text: "\xc3"})
				return err
			}},
			{"a plan section with a NUL", "referral.plan_edit", "section", func() error {
				_, _, err := w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: rooms.NewID(), ReferralID: r.ID, Section: "imaging\x00", Text: "x"})
				return err
			}},
			{"a reason with a NUL", "referral.transition", "reason", func() error { return move("a\x00", nil) }},
			{"an outcome value with a NUL", "referral.transition", "outcome.ward", func() error { return move("", map[string]any{"ward": "4\x00"}) }},
			{"an outcome key with a NUL", "referral.transition", "outcome", func() error { return move("", map[string]any{"w\x00": "4"}) }},
			{"a participant id with a NUL", "referral.participant_add", "user_id", func() error {
				_, err := w.svc.AddParticipant(ctx, w.referrer, rooms.AddParticipant{Ref: rooms.NewID(), ReferralID: r.ID, UserID: w.colleague.User.ID[:35] + "\x00"})
				return err
			}},
			{"an assignee id that is not UTF-8", "referral.assign", "assignee_id", func() error {
				_, err := w.svc.Assign(ctx, w.coord, rooms.Assign{Ref: rooms.NewID(), ReferralID: r.ID, AssigneeID: "\xff"})
				return err
			}},
			{"a patient name with a NUL", "referral.create", "patient.name", func() error { return create(func(n *rooms.NewReferral) { n.Patient.Name = "Jo\x00" }) }},
			{"a patient name of zero-width spaces", "referral.create", "patient.name", func() error { return create(func(n *rooms.NewReferral) { n.Patient.Name = "\u200b\u200b" }) }},
			{"a contact phone with a NUL", "referral.create", "contact_phone", func() error { return create(func(n *rooms.NewReferral) { n.ContactPhone = "0151\x00" }) }},
			{"form text with a NUL", "referral.create", "form.primary_cancer", func() error { return create(func(n *rooms.NewReferral) { n.Form["primary_cancer"] = "x\x00" }) }},
			{"a form key with a NUL", "referral.create", "form", func() error { return create(func(n *rooms.NewReferral) { n.Form["x\x00"] = "y" }) }},
			{"a pathway with a NUL", "referral.create", "pathway", func() error { return create(func(n *rooms.NewReferral) { n.PathwayID = "mscc\x00" }) }},
			{"an approved user id with a NUL", "user.approve", "id", func() error { _, err := w.svc.ApproveUser(ctx, admin, "\x00"); return err }},
			{"a suspended user id that is not UTF-8", "user.suspend", "id", func() error { _, err := w.svc.SuspendUser(ctx, admin, "\xff"); return err }},
			{"a reinstated user id with a NUL", "user.reinstate", "id", func() error { _, err := w.svc.ReinstateUser(ctx, admin, w.referrer.User.ID+"\x00"); return err }},
			{"a created user's email with a NUL", "user.create", "email", func() error {
				_, err := w.svc.CreateUser(ctx, rooms.System, newUser("Jo Bloggs", "jo\x00@nhs.net"))
				return err
			}},
			{"a registered email that is not UTF-8", "user.register", "email", func() error { return register("Jo Bloggs", "JO\xff@nhs.net") }},
			{"a registered email without a dot in its domain", "user.register", "email", func() error { return register("Jo Bloggs", "jo@nhs") }},
			{"a registered name with a NUL", "user.register", "name", func() error { return register("Jo\x00", "jo@nhs.net") }},
			{"a registered name of invisible characters", "user.register", "name", func() error { return register("\u2060\ufeff", "jo@nhs.net") }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := len(w.auditFor(t, rooms.AuditFilter{Event: tc.event, Outcome: rooms.OutcomeInvalid}))
				wantErr(t, tc.call(), rooms.CodeInvalid, tc.field)
				if after := len(w.auditFor(t, rooms.AuditFilter{Event: tc.event, Outcome: rooms.OutcomeInvalid})); after != before+1 {
					t.Fatalf("%d invalid %s entries audited, want %d", after, tc.event, before+1)
				}
			})
		}
		if es := w.events(t, r.ID); len(es) != 2 {
			t.Fatalf("%d events on the referral; want 2: a refused command changed it", len(es))
		}
	})
}

// admin returns an active admin of the receiving organisation.
func (w *world) admin(t *testing.T) rooms.Caller {
	t.Helper()
	u, err := w.svc.CreateUser(context.Background(), rooms.System, rooms.NewUser{
		Name: "Ada Admin", Email: "admin@example.nhs.uk", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7000099",
		Organisation: "RET", Roles: []rooms.Role{rooms.RoleAdmin}, Status: rooms.UserActive, PasswordHash: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	return rooms.Caller{User: u, ClientAddr: "127.0.0.1"}
}

func TestRegisteringATakenEmailLooksLikeSuccess(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		reg := func(name, email string) rooms.User {
			t.Helper()
			u, err := w.svc.Register(ctx, "192.0.2.7", rooms.NewUser{Name: name, Email: email, ProfessionalBody: rooms.BodyGMC,
				RegistrationNumber: "7123456", Organisation: "RJR", Roles: []rooms.Role{rooms.RoleClinician}, PasswordHash: "x"})
			if err != nil {
				t.Fatalf("register %s: %v; want the answer a new account gets", name, err)
			}
			if u.Status != rooms.UserPending || rooms.CheckID("id", u.ID) != nil {
				t.Fatalf("register %s: status %s id %q; want pending with an id", name, u.Status, u.ID)
			}
			return u
		}
		first := reg("Jo Bloggs", "jo.bloggs@nhs.net")
		second := reg("Someone Else", " Jo.Bloggs@NHS.net ")
		if first.ID == second.ID {
			t.Fatalf("both registrations answered id %s; a repeat must not echo the existing account's id", first.ID)
		}
		stored, err := w.store.UserByEmail(ctx, "jo.bloggs@nhs.net")
		if err != nil || stored.ID != first.ID || stored.Name != "Jo Bloggs" {
			t.Fatalf("stored user %+v (%v); want the first registration unchanged", stored, err)
		}
		if _, err := w.store.User(ctx, second.ID); !errorsIsNotFound(err) {
			t.Fatalf("the second registration's id reads %v; want not found", err)
		}
		pending, err := w.store.Users(ctx, rooms.UserFilter{Organisation: "RJR", Status: rooms.UserPending})
		if err != nil || len(pending) != 1 {
			t.Fatalf("%d pending users at RJR (%v); want 1", len(pending), err)
		}
		dups := w.auditFor(t, rooms.AuditFilter{Event: "user.register", Outcome: rooms.OutcomeInvalid})
		if len(dups) != 1 || dups[0].Detail != "duplicate_email" || dups[0].ClientAddr != "192.0.2.7" {
			t.Fatalf("register refusals audited %+v; want one duplicate_email from 192.0.2.7", dups)
		}
		for _, e := range w.auditFor(t, rooms.AuditFilter{Event: "user.register"}) {
			if strings.Contains(strings.ToLower(e.Detail), "bloggs") {
				t.Errorf("audit detail %q quotes the email", e.Detail)
			}
		}
	})
}

func TestOutcomesAreKeptPerStatus(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityEmergency)
		move := func(c rooms.Caller, to rooms.Status, outcome map[string]any) (rooms.Event, error) {
			e, _, err := w.svc.Transition(ctx, c, rooms.Transition{Ref: rooms.NewID(), ReferralID: r.ID, To: to, Outcome: outcome})
			return e, err
		}
		must := func(e rooms.Event, err error) rooms.Event {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		_, err := move(w.coord, rooms.StatusInTriage, map[string]any{"bed_type": "spinal"})
		wantErr(t, err, rooms.CodeInvalid, "outcome")
		must(move(w.coord, rooms.StatusInTriage, nil))
		_, err = move(w.specialist, rooms.StatusAccepted, map[string]any{"bed_type": "spinal", "ward": "4"})
		wantErr(t, err, rooms.CodeInvalid, "outcome.ward")
		must(move(w.specialist, rooms.StatusAccepted, map[string]any{"bed_type": "spinal"}))
		booking := map[string]any{"bed_type": "neurosurgical", "ward": "Ward 4", "expected_at": "2026-11-21T09:00:00Z"}
		booked := must(move(w.bedManager, rooms.StatusTransferBooked, booking))
		must(move(w.specialist, rooms.StatusTransferred, map[string]any{"arrived_at": "2026-11-21T10:15:00Z"}))

		var body rooms.TransitionBody
		if err := json.Unmarshal(booked.Body, &body); err != nil {
			t.Fatal(err)
		}
		checkJSONEqual(t, "the booking event's outcome", body.Outcome, booking)
		got, err := w.svc.Referral(ctx, w.referrer, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkJSONEqual(t, "outcomes", got.Outcomes, map[rooms.Status]map[string]any{
			rooms.StatusAccepted:       {"bed_type": "spinal"},
			rooms.StatusTransferBooked: booking,
			rooms.StatusTransferred:    {"arrived_at": "2026-11-21T10:15:00Z"},
		})
		b, _ := json.Marshal(got)
		if strings.Contains(string(b), `"outcome"`) || !strings.Contains(string(b), `"outcomes":{"accepted"`) {
			t.Errorf("referral JSON %s; want outcomes by status and no outcome field", b)
		}
	})
}

func errorsIsNotFound(err error) bool { return rooms.CodeOf(err) == rooms.CodeNotFound }

func checkJSONEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s = %s, want %s", what, g, w)
	}
}
