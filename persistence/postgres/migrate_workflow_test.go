package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"patientpass/persistence/postgres/pgtest"
)

// oldEvent and oldReferral are rows as they were stored before 0006.
type oldEvent struct {
	kind, body string
	at         time.Time
}

type oldReferral struct {
	id, status       string
	submitted        *time.Time
	created, updated time.Time
	events           []oldEvent
	// What 0006 must make of it.
	statusChanged     time.Time
	triaged, reminder *time.Time
}

// workflowBackfillCases are referrals from before the workflow, each with
// the status-changed, triaged and reminder times the migration must give
// it. m(n) is n minutes after a reference time.
func workflowBackfillCases() []oldReferral {
	base := time.Date(2026, time.January, 5, 9, 0, 0, 123456000, time.UTC)
	m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	p := func(t time.Time) *time.Time { return &t }
	created := func(status string, at time.Time) oldEvent {
		return oldEvent{"created", `{"pathway":"mscc","priority":"urgent","status":"` + status + `"}`, at}
	}
	move := func(from, to string, at time.Time) oldEvent {
		return oldEvent{"transition", `{"from":"` + from + `","to":"` + to + `"}`, at}
	}
	message := func(at time.Time) oldEvent { return oldEvent{"message", `{"body":"hello"}`, at} }
	return []oldReferral{
		{id: "r-draft", status: "draft", created: m(0), updated: m(5),
			events:        []oldEvent{created("draft", m(0)), message(m(5))},
			statusChanged: m(0)},
		{id: "r-submitted", status: "submitted", submitted: p(m(11)), created: m(10), updated: m(12),
			events:        []oldEvent{created("draft", m(10)), move("draft", "submitted", m(11)), message(m(12))},
			statusChanged: m(11), reminder: p(m(11))},
		// No events to say when: updated_at, for both.
		{id: "r-in-triage", status: "in_triage", created: m(20), updated: m(23),
			statusChanged: m(23), reminder: p(m(23))},
		{id: "r-more-info", status: "more_info_needed", submitted: p(m(30)), created: m(30), updated: m(34),
			events:        []oldEvent{created("submitted", m(30)), move("submitted", "more_info_needed", m(31)), message(m(34))},
			statusChanged: m(31), triaged: p(m(31)), reminder: p(m(34))},
		// Resubmitted after more information: its clock runs again.
		{id: "r-resubmitted", status: "in_triage", submitted: p(m(43)), created: m(40), updated: m(45),
			events: []oldEvent{created("draft", m(40)), move("draft", "submitted", m(41)),
				move("submitted", "more_info_needed", m(42)), move("more_info_needed", "submitted", m(43)),
				move("submitted", "in_triage", m(44)), message(m(45))},
			statusChanged: m(44), reminder: p(m(43))},
		{id: "r-accepted", status: "accepted", submitted: p(m(50)), created: m(50), updated: m(53),
			events: []oldEvent{created("submitted", m(50)), move("submitted", "in_triage", m(51)),
				move("in_triage", "accepted", m(52)), message(m(53))},
			statusChanged: m(52), triaged: p(m(52))},
		// Cancelled before it was ever submitted: no clock ever ran.
		{id: "r-cancelled-draft", status: "cancelled", created: m(60), updated: m(61),
			events:        []oldEvent{created("draft", m(60)), move("draft", "cancelled", m(61))},
			statusChanged: m(61)},
	}
}

// TestMigrationBackfillsWorkflowTimes builds the schema as it was before
// 0006, with referrals in every kind of state, and checks the times the
// migration gives them, and that the scheduler finds those waiting on
// someone due.
func TestMigrationBackfillsWorkflowTimes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	admin := pgtest.Admin(t, url)
	migrateBefore(t, admin, 6)
	cases := workflowBackfillCases()
	for _, c := range cases {
		_, err := admin.Exec(ctx, `INSERT INTO referrals (id, pathway_id, status, priority, patient_nhs_number, patient_name,
			patient_date_of_birth, patient_sex, referrer, referring_organisation, receiving_organisation,
			submitted_at, created_at, updated_at, head_seq)
			VALUES ($1, 'mscc', $2, 'urgent', '9434765919', 'A', '1950-01-01', 'female', '{}', 'RJR', 'RET', $3, $4, $5, $6)`,
			c.id, c.status, c.submitted, c.created, c.updated, len(c.events))
		if err != nil {
			t.Fatalf("insert old referral %s: %v", c.id, err)
		}
		for i, e := range c.events {
			if _, err := admin.Exec(ctx, `INSERT INTO events (referral_id, seq, kind, author, at, body) VALUES ($1, $2, $3, '{}', $4, $5)`,
				c.id, i+1, e.kind, e.at, e.body); err != nil {
				t.Fatalf("insert old event %d of %s: %v", i+1, c.id, err)
			}
		}
	}

	s := openStore(t, url)
	var due []string
	for _, c := range cases {
		r, err := s.Referral(ctx, c.id)
		if err != nil {
			t.Fatalf("read %s: %v", c.id, err)
		}
		if !r.StatusChangedAt.Equal(c.statusChanged) {
			t.Errorf("%s: status changed at %v, want %v", c.id, r.StatusChangedAt, c.statusChanged)
		}
		if !sameTimePtr(r.TriagedAt, c.triaged) {
			t.Errorf("%s: triaged at %v, want %v", c.id, r.TriagedAt, c.triaged)
		}
		if !sameTimePtr(r.ReminderAt, c.reminder) {
			t.Errorf("%s: reminder at %v, want %v", c.id, r.ReminderAt, c.reminder)
		}
		if c.reminder != nil {
			due = append(due, c.id)
		}
	}
	got, err := s.DueReminders(ctx, time.Date(2026, time.January, 6, 0, 0, 0, 0, time.UTC), 0)
	if err != nil {
		t.Fatalf("due reminders: %v", err)
	}
	// The cases are in the order of their reminders.
	if !slices.Equal(got, due) {
		t.Errorf("due reminders %q, want %q", got, due)
	}
}

func sameTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
