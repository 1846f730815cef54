package storetest

import (
	"context"
	"testing"
	"time"

	"patientpass/rooms"
)

var referralTests = []subtest{
	{"create_then_get_round_trips_every_field", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := f.referral("r-1", at(0))
		// Participants come back oldest first whatever order they were given in.
		want.Participants = []rooms.Participant{
			{UserID: f.colleague.ID, Name: f.colleague.Name, AddedBy: f.referrer.ID, AddedAt: at(time.Second)},
			{UserID: f.referrer.ID, Name: f.referrer.Name, AddedBy: f.referrer.ID, AddedAt: at(0)},
		}
		want.AssigneeID = f.specialist.ID
		want.Outcomes = map[rooms.Status]map[string]any{
			rooms.StatusAccepted:       {"bed_type": "spinal"},
			rooms.StatusTransferBooked: {"bed_type": "neurosurgical", "ward": "Ward 4 — bed 12", "expected_at": "2026-03-01T14:30:00Z"},
		}
		want.SubmittedAt = ptr(at(time.Minute))
		want.TriageDueAt = ptr(at(time.Hour))
		want.StatusChangedAt = at(time.Minute)
		want.TriagedAt = ptr(at(20 * time.Minute))
		want.ReminderAt = ptr(at(45 * time.Minute))
		want.Status = rooms.StatusSubmitted
		want.Priority = rooms.PriorityEmergency
		want.UpdatedAt = at(time.Minute)
		want.HeadSeq = 0
		f.createReferral(t, want)

		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		want.Participants = []rooms.Participant{want.Participants[1], want.Participants[0]}
		checkReferral(t, "referral", got, want)
		if len(got.Plan.Sections) != 0 {
			t.Errorf("new referral has plan sections %+v, want none", got.Plan.Sections)
		}
	}},
	{"nullable_fields_stay_empty", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := f.referral("r-1", at(0))
		want.Outcomes = nil
		f.createReferral(t, want)
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		if got.SubmittedAt != nil || got.TriageDueAt != nil || got.TriagedAt != nil || got.ReminderAt != nil {
			t.Errorf("submitted %v, due %v, triaged %v, reminder %v; want all nil",
				got.SubmittedAt, got.TriageDueAt, got.TriagedAt, got.ReminderAt)
		}
		if got.AssigneeID != "" || len(got.Outcomes) != 0 {
			t.Errorf("assignee %q, outcomes %v; want both empty", got.AssigneeID, got.Outcomes)
		}
		checkReferral(t, "referral", got, want)
	}},
	{"outcomes_are_kept_by_status", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		r := f.referral("r-1", at(0))
		f.createReferral(t, r)
		accepted := map[string]any{"bed_type": "spinal"}
		r.Status = rooms.StatusAccepted
		r.Outcomes = map[rooms.Status]map[string]any{rooms.StatusAccepted: accepted}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateReferral(ctx, r) })

		// A later status adds its outcome beside the first, whatever its
		// text holds: quotes, backslashes, <, line breaks, astral letters.
		r.Status = rooms.StatusTransferBooked
		r.Outcomes = map[rooms.Status]map[string]any{
			rooms.StatusAccepted:        accepted,
			rooms.StatusTransferBooked:  {"bed_type": "neurosurgical", "ward": `Ward "4" \ <b>𝒜</b>`, "expected_at": "2026-03-01T14:30:00+01:00"},
			rooms.StatusManagedRemotely: {"advice": "line one\nline two\ttabbed"},
		}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateReferral(ctx, r) })
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		checkReferral(t, "referral with outcomes of three statuses", got, r)
		if got.Outcomes[rooms.StatusAccepted]["bed_type"] != "spinal" {
			t.Errorf("accepted outcome %v; want the bed type accepted for kept", got.Outcomes[rooms.StatusAccepted])
		}
		var listed []rooms.Referral
		listed, err = s.Referrals(t.Context(), rooms.ReferralFilter{VisibleToUser: f.referrer.ID})
		if err != nil || len(listed) != 1 {
			t.Fatalf("list referrals: %d (%v); want 1", len(listed), err)
		}
		checkReferral(t, "listed referral", listed[0], r)
	}},
	{"duplicate_id_is_refused", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		again := f.referral("r-1", at(time.Hour))
		again.Patient.Name = "Someone Else"
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateReferral(t.Context(), again) })
		wantDuplicate(t, "create referral with a taken id", err)
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		if got.Patient.Name != "Test Patient" {
			t.Errorf("refused create changed the referral")
		}
	}},
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.Referral(t.Context(), "r-missing")
		wantNotFound(t, "get missing referral", err)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error {
			_, err := tx.LockReferral(t.Context(), "r-missing")
			return err
		})
		wantNotFound(t, "lock missing referral", err)
	}},
	{"update_stores_every_mutable_field", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		r := f.referral("r-1", at(0))
		f.createReferral(t, r)
		f.createReferral(t, f.referral("r-other", at(0)))

		r.Status = rooms.StatusAccepted
		r.Priority = rooms.PriorityEmergency
		r.Form = map[string]any{"primary_cancer": "revised", "neuro_limb_weakness": true, "sins_score": 12.0}
		r.ContactPhone = "0151 999 9999"
		r.ConsultantDiscussed = false
		r.AssigneeID = f.specialist.ID
		r.Outcomes = map[rooms.Status]map[string]any{rooms.StatusAccepted: {"bed_type": "neurosurgical"}}
		r.SubmittedAt = ptr(at(10 * time.Minute))
		r.TriageDueAt = ptr(at(70 * time.Minute))
		r.StatusChangedAt = at(25 * time.Minute)
		r.TriagedAt = ptr(at(25*time.Minute + time.Microsecond))
		r.ReminderAt = ptr(at(52*time.Minute + 30*time.Second))
		r.UpdatedAt = at(30 * time.Minute)
		r.HeadSeq = 7
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateReferral(ctx, r) })
		got, err := s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		checkReferral(t, "updated referral", got, r)

		// Clearing must clear, not leave the old values behind.
		r.AssigneeID = ""
		r.Outcomes = nil
		r.TriageDueAt = nil
		r.SubmittedAt = nil
		r.TriagedAt = nil
		r.ReminderAt = nil
		r.StatusChangedAt = at(40 * time.Minute)
		r.HeadSeq = 8
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateReferral(ctx, r) })
		got, err = s.Referral(t.Context(), "r-1")
		if err != nil {
			t.Fatalf("get referral: %v", err)
		}
		checkReferral(t, "cleared referral", got, r)

		other, err := s.Referral(t.Context(), "r-other")
		if err != nil {
			t.Fatalf("get other referral: %v", err)
		}
		checkReferral(t, "referral not updated", other, f.referral("r-other", at(0)))
	}},
	{"update_of_missing_referral_is_not_found", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.UpdateReferral(t.Context(), f.referral("r-ghost", at(0))) })
		wantNotFound(t, "update missing referral", err)
	}},
	{"lock_returns_the_referral", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := f.referral("r-1", at(0))
		want.HeadSeq = 3
		f.createReferral(t, want)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			return tx.PutPlanSection(ctx, "r-1", rooms.PlanSection{Name: "imaging", Revision: 1, Text: "MRI whole spine", UpdatedBy: f.specialist.ID, UpdatedAt: at(time.Minute)})
		})
		want.Plan.Sections = []rooms.PlanSection{{Name: "imaging", Revision: 1, Text: "MRI whole spine", UpdatedBy: f.specialist.ID, UpdatedAt: at(time.Minute)}}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			got, err := tx.LockReferral(ctx, "r-1")
			if err != nil {
				return err
			}
			checkReferral(t, "locked referral", got, want)
			return nil
		})
	}},
	{"list_filters_and_orders", listReferrals},
}

// listReferrals checks every ReferralFilter field and the ordering: earliest
// triage deadline first, referrals without one last, newest first among
// equals.
func listReferrals(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	mk := func(id string, created time.Time, status rooms.Status, pr rooms.Priority, due *time.Time, people ...rooms.User) rooms.Referral {
		r := f.referral(id, created)
		r.Status, r.Priority, r.TriageDueAt = status, pr, due
		r.Participants = nil
		for i, u := range people {
			r.Participants = append(r.Participants, rooms.Participant{UserID: u.ID, Name: u.Name, AddedBy: people[0].ID, AddedAt: created.Add(time.Duration(i) * time.Second)})
		}
		return r
	}
	// Created out of order so insertion order cannot pass for the ordering.
	r5 := mk("r5", at(4*time.Minute), rooms.StatusAccepted, rooms.PriorityRoutine, nil, f.referrer)
	r3 := mk("r3", at(2*time.Minute), rooms.StatusDraft, rooms.PriorityRoutine, nil, f.colleague)
	r2 := mk("r2", at(1*time.Minute), rooms.StatusInTriage, rooms.PriorityUrgent, ptr(at(4*time.Hour)), f.referrer, f.colleague)
	r1 := mk("r1", at(0), rooms.StatusSubmitted, rooms.PriorityEmergency, ptr(at(time.Hour)), f.referrer)
	r6 := mk("r6", at(5*time.Minute), rooms.StatusSubmitted, rooms.PriorityEmergency, ptr(at(time.Hour)), f.referrer)
	r4 := mk("r4", at(3*time.Minute), rooms.StatusSubmitted, rooms.PriorityUrgent, ptr(at(30*time.Minute)), f.outsider)
	r4.PathwayID, r4.ReceivingOrganisation = f.breast.ID, f.breast.ReceivingOrganisation
	r4.Referrer, r4.ReferringOrganisation = rooms.AuthorOf(f.outsider), f.outsider.Organisation
	all := []rooms.Referral{r5, r3, r2, r1, r6, r4}
	section := rooms.PlanSection{Name: "steroids", Revision: 2, Text: "dexamethasone", UpdatedBy: f.specialist.ID, UpdatedAt: at(time.Minute)}
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		for _, r := range all {
			if err := tx.CreateReferral(ctx, r); err != nil {
				return err
			}
		}
		return tx.PutPlanSection(ctx, "r2", section)
	})
	r2.Plan.Sections = []rooms.PlanSection{section}

	for _, c := range []struct {
		name   string
		filter rooms.ReferralFilter
		want   []string
	}{
		{"no_filter", rooms.ReferralFilter{}, []string{"r4", "r6", "r1", "r2", "r5", "r3"}},
		{"visible_to_user", rooms.ReferralFilter{VisibleToUser: f.referrer.ID}, []string{"r6", "r1", "r2", "r5"}},
		{"visible_to_organisation", rooms.ReferralFilter{VisibleToOrganisation: "RET"}, []string{"r6", "r1", "r2", "r5", "r3"}},
		{"visible_to_user_or_organisation", rooms.ReferralFilter{VisibleToUser: f.colleague.ID, VisibleToOrganisation: "REN"}, []string{"r4", "r2", "r3"}},
		{"visible_to_nobody", rooms.ReferralFilter{VisibleToUser: f.specialist.ID}, nil},
		{"one_status", rooms.ReferralFilter{Status: []rooms.Status{rooms.StatusDraft}}, []string{"r3"}},
		{"several_statuses", rooms.ReferralFilter{Status: []rooms.Status{rooms.StatusInTriage, rooms.StatusSubmitted}}, []string{"r4", "r6", "r1", "r2"}},
		{"pathway", rooms.ReferralFilter{PathwayID: f.breast.ID}, []string{"r4"}},
		{"priority", rooms.ReferralFilter{Priority: rooms.PriorityUrgent}, []string{"r4", "r2"}},
		{"limit", rooms.ReferralFilter{Limit: 2}, []string{"r4", "r6"}},
		{"combined", rooms.ReferralFilter{VisibleToOrganisation: "RET", Status: []rooms.Status{rooms.StatusSubmitted, rooms.StatusAccepted}, Priority: rooms.PriorityEmergency, Limit: 1}, []string{"r6"}},
		{"receiving_organisation", rooms.ReferralFilter{ReceivingOrganisation: "REN"}, []string{"r4"}},
		{"receiving_organisation_and_user", rooms.ReferralFilter{VisibleToUser: f.referrer.ID, ReceivingOrganisation: "RET"}, []string{"r6", "r1", "r2", "r5"}},
		// Unlike VisibleToOrganisation, it narrows what the user sees.
		{"receiving_organisation_is_not_widened_by_the_user", rooms.ReferralFilter{VisibleToUser: f.outsider.ID, ReceivingOrganisation: "RET"}, nil},
		{"receiving_organisation_and_visible_organisation", rooms.ReferralFilter{VisibleToUser: f.colleague.ID, VisibleToOrganisation: "REN", ReceivingOrganisation: "RET"}, []string{"r2", "r3"}},
		// Updated at or after: r4 was updated exactly then.
		{"updated_since", rooms.ReferralFilter{UpdatedSince: at(3 * time.Minute)}, []string{"r4", "r6", "r5"}},
		{"updated_since_a_microsecond_later", rooms.ReferralFilter{UpdatedSince: at(3*time.Minute + time.Microsecond)}, []string{"r6", "r5"}},
		{"updated_since_and_receiving_organisation", rooms.ReferralFilter{UpdatedSince: at(time.Minute), ReceivingOrganisation: "RET"}, []string{"r6", "r2", "r5", "r3"}},
		// ByChange: oldest change first (each was updated when created),
		// after a cursor of (updated, id), before a horizon.
		{"by_change", rooms.ReferralFilter{ByChange: true}, []string{"r1", "r2", "r3", "r4", "r5", "r6"}},
		{"by_change_after_a_cursor", rooms.ReferralFilter{ByChange: true, ChangedAfter: &rooms.ChangeCursor{UpdatedAt: at(2 * time.Minute), ID: "r3"}}, []string{"r4", "r5", "r6"}},
		// A cursor at r3's time with a lower id still has r3 after it.
		{"by_change_after_a_cursor_tied_in_time", rooms.ReferralFilter{ByChange: true, ChangedAfter: &rooms.ChangeCursor{UpdatedAt: at(2 * time.Minute), ID: "r2"}}, []string{"r3", "r4", "r5", "r6"}},
		{"by_change_before_a_horizon", rooms.ReferralFilter{ByChange: true, ChangedBefore: at(3 * time.Minute)}, []string{"r1", "r2", "r3"}},
		{"by_change_visible_and_limited", rooms.ReferralFilter{ByChange: true, VisibleToOrganisation: "RET", Limit: 2}, []string{"r1", "r2"}},
	} {
		got, err := s.Referrals(t.Context(), c.filter)
		if err != nil {
			t.Fatalf("%s: list referrals: %v", c.name, err)
		}
		checkIDs(t, c.name, ids(got), c.want)
	}

	got, err := s.Referrals(t.Context(), rooms.ReferralFilter{})
	if err != nil {
		t.Fatalf("list referrals: %v", err)
	}
	byID := map[string]rooms.Referral{}
	for _, r := range got {
		byID[r.ID] = r
	}
	for _, want := range []rooms.Referral{r2, r4, r5} {
		checkReferral(t, "listed "+want.ID, byID[want.ID], want)
	}
}
