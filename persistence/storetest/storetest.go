// Package storetest is the contract every implementation of rooms.Store must
// meet. Each store's tests call Run; the same assertions then hold for the
// embedded SQLite store and for Postgres.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"patientpass/rooms"
)

// Run runs the contract suite. open returns a new, empty, migrated store for
// one subtest; the caller's open registers its own cleanup with t.Cleanup.
//
// Subtests run in parallel, each on its own store. The suite never retries: a
// store that meets lock or busy contention must resolve it itself (inside
// InTx), because an error here would be a lost write in production.
func Run(t *testing.T, open func(t *testing.T) rooms.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"organisations", organisationTests},
		{"users", userTests},
		{"pathways", pathwayTests},
		{"referrals", referralTests},
		{"events", eventTests},
		{"plan", planTests},
		{"participants", participantTests},
		{"read_markers", readMarkerTests},
		{"commands", commandTests},
		{"audit", auditTests},
		{"settings", settingTests},
		{"sessions", sessionTests},
		{"credentials", credentialTests},
		{"attempts", attemptTests},
		{"transactions", transactionTests},
		{"concurrency", concurrencyTests},
		{"notifications", notificationTests},
		{"system_notices", systemNoticeTests},
		{"opel", opelTests},
		{"displays", displayTests},
		{"integrations", integrationTests},
		{"reminders", reminderTests},
		{"workflow_transactions", workflowTransactionTests},
		{"scheduler_lock", schedulerLockTests},
		{"groups", groupTests},
		{"webhooks", webhookTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, st := range g.tests {
				t.Run(st.name, func(t *testing.T) {
					t.Parallel()
					st.run(t, open(t))
				})
			}
		})
	}
}

// subtest is one named check against a fresh store.
type subtest struct {
	name string
	run  func(t *testing.T, s rooms.Store)
}

// errBoom is what a transaction returns to force a rollback.
var errBoom = errors.New("storetest: deliberate failure")

// base is the suite's reference time: UTC, with microseconds set so that a
// store that keeps only milliseconds or seconds fails.
var base = time.Date(2025, time.March, 4, 9, 30, 0, 123456000, time.UTC)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// ptr returns a pointer to a copy of t.
func ptr(t time.Time) *time.Time { return &t }

// fixture is the directory every referral test needs: organisations, two
// pathways and users, stored as a Postgres store with foreign keys would
// require them.
type fixture struct {
	s          rooms.Store
	referrer   rooms.User // clinician at RJR
	colleague  rooms.User // clinician at RJR
	specialist rooms.User // specialist at RET, which receives mscc
	outsider   rooms.User // clinician at RBL, part of nothing
	mscc       rooms.Pathway
	breast     rooms.Pathway // received by REN
}

func newFixture(t *testing.T, s rooms.Store) *fixture {
	t.Helper()
	f := &fixture{s: s}
	f.mscc = rooms.MSCC("RET")
	f.breast = rooms.MSCC("REN")
	f.breast.ID = "breast"
	f.breast.Name = "Breast oncology"
	f.referrer = testUser("u-referrer", "referrer@demo.test", "RJR", at(-4*time.Hour), rooms.RoleClinician)
	f.colleague = testUser("u-colleague", "colleague@demo.test", "RJR", at(-3*time.Hour), rooms.RoleClinician)
	f.specialist = testUser("u-specialist", "specialist@demo.test", "RET", at(-2*time.Hour), rooms.RoleSpecialist, rooms.RoleCoordinator)
	f.outsider = testUser("u-outsider", "outsider@demo.test", "RBL", at(-time.Hour), rooms.RoleClinician)
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		for _, o := range []rooms.Organisation{
			{ODS: "RET", Name: "The Walton Centre"},
			{ODS: "RJR", Name: "Countess of Chester Hospital"},
			{ODS: "RBL", Name: "Wirral University Teaching Hospital"},
			{ODS: "REN", Name: "The Clatterbridge Cancer Centre"},
		} {
			if err := tx.PutOrganisation(ctx, o); err != nil {
				return err
			}
		}
		for _, p := range []rooms.Pathway{f.mscc, f.breast} {
			if err := tx.PutPathway(ctx, p); err != nil {
				return err
			}
		}
		for _, u := range []rooms.User{f.referrer, f.colleague, f.specialist, f.outsider} {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
	return f
}

func testUser(id, email, org string, created time.Time, roles ...rooms.Role) rooms.User {
	return rooms.User{
		ID:                 id,
		Email:              email,
		Name:               "Dr " + id,
		ProfessionalBody:   rooms.BodyGMC,
		RegistrationNumber: "7654321",
		Organisation:       org,
		Roles:              roles,
		Status:             rooms.UserActive,
		PasswordHash:       "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		CreatedAt:          created,
		UpdatedAt:          created,
	}
}

// referral returns a complete draft referral into mscc made by the referrer,
// with the referrer as its only participant.
func (f *fixture) referral(id string, created time.Time) rooms.Referral {
	return rooms.Referral{
		ID:        id,
		PathwayID: f.mscc.ID,
		Status:    rooms.StatusDraft,
		Priority:  rooms.PriorityUrgent,
		Patient: rooms.Patient{
			NHSNumber:   "9434765919",
			Name:        "Test Patient",
			DateOfBirth: "1956-04-30",
			Sex:         "female",
		},
		Form: map[string]any{
			"primary_cancer":      "test primary",
			"spinal_levels":       "T6–T8",
			"neuro_limb_weakness": false,
			"sins_score":          7.0,
			"steroids_dose_mg":    16.5,
		},
		ContactPhone:          "0151 000 0000",
		ConsultantDiscussed:   true,
		Referrer:              rooms.AuthorOf(f.referrer),
		ReferringOrganisation: f.referrer.Organisation,
		ReceivingOrganisation: f.mscc.ReceivingOrganisation,
		CreatedAt:             created,
		UpdatedAt:             created,
		Participants: []rooms.Participant{
			{UserID: f.referrer.ID, Name: f.referrer.Name, AddedBy: f.referrer.ID, AddedAt: created},
		},
	}
}

// createReferral stores r in a transaction of its own.
func (f *fixture) createReferral(t *testing.T, r rooms.Referral) {
	t.Helper()
	inTx(t, f.s, func(ctx context.Context, tx rooms.Tx) error { return tx.CreateReferral(ctx, r) })
}

// event returns a message event of referral id at position seq.
func (f *fixture) event(id string, seq int64) rooms.Event {
	return rooms.Event{
		ReferralID: id,
		Seq:        seq,
		Kind:       rooms.EventMessage,
		Author:     rooms.AuthorOf(f.referrer),
		At:         at(time.Duration(seq) * time.Second),
		Body:       json.RawMessage(`{"body":"message ` + string(rune('a'+seq%26)) + `"}`),
	}
}

// inTx runs fn in a transaction and fails the test if it does not commit.
func inTx(t *testing.T, s rooms.Store, fn func(ctx context.Context, tx rooms.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := s.InTx(ctx, func(tx rooms.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("transaction failed: %v", err)
	}
}

// wantNotFound fails unless err wraps rooms.ErrNotFound.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("%s: got error %v, want one wrapping rooms.ErrNotFound", what, err)
	}
}

// wantDuplicate fails unless err wraps rooms.ErrDuplicate.
func wantDuplicate(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rooms.ErrDuplicate) {
		t.Errorf("%s: got error %v, want one wrapping rooms.ErrDuplicate", what, err)
	}
}

// sameTime compares times at the microsecond precision stores keep.
func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return ptr(normTime(*t))
}

// normReferral puts r in the form two stores that agree would both return:
// times in UTC at microseconds, empty collections as nil.
func normReferral(r rooms.Referral) rooms.Referral {
	r.CreatedAt = normTime(r.CreatedAt)
	r.UpdatedAt = normTime(r.UpdatedAt)
	r.SubmittedAt = normTimePtr(r.SubmittedAt)
	r.TriageDueAt = normTimePtr(r.TriageDueAt)
	r.StatusChangedAt = normTime(r.StatusChangedAt)
	r.TriagedAt = normTimePtr(r.TriagedAt)
	r.ReminderAt = normTimePtr(r.ReminderAt)
	if len(r.Form) == 0 {
		r.Form = nil
	}
	if len(r.Outcomes) == 0 {
		r.Outcomes = nil
	}
	ps := make([]rooms.Participant, 0, len(r.Participants))
	for _, p := range r.Participants {
		p.AddedAt = normTime(p.AddedAt)
		ps = append(ps, p)
	}
	r.Participants = ps
	ss := make([]rooms.PlanSection, 0, len(r.Plan.Sections))
	for _, s := range r.Plan.Sections {
		s.UpdatedAt = normTime(s.UpdatedAt)
		ss = append(ss, s)
	}
	r.Plan.Sections = ss
	return r
}

// checkReferral compares every field of a referral. JSON is the comparison
// because form and outcomes values come back as JSON types; ReminderAt,
// which JSON leaves out, is compared apart.
func checkReferral(t *testing.T, what string, got, want rooms.Referral) {
	t.Helper()
	got, want = normReferral(got), normReferral(want)
	checkJSON(t, what, got, want)
	if !sameTimePtr(got.ReminderAt, want.ReminderAt) {
		t.Errorf("%s: reminder at %v, want %v", what, got.ReminderAt, want.ReminderAt)
	}
}

// sameTimePtr reports whether a and b are both nil or the same time at
// microseconds.
func sameTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return sameTime(*a, *b)
}

func normUser(u rooms.User) rooms.User {
	u.CreatedAt = normTime(u.CreatedAt)
	u.UpdatedAt = normTime(u.UpdatedAt)
	if len(u.Roles) == 0 {
		u.Roles = nil
	}
	return u
}

// checkUser compares every field of a user, including the secrets JSON
// leaves out.
func checkUser(t *testing.T, what string, got, want rooms.User) {
	t.Helper()
	got, want = normUser(got), normUser(want)
	checkJSON(t, what, got, want)
	if got.PasswordHash != want.PasswordHash {
		t.Errorf("%s: password hash %q, want %q", what, got.PasswordHash, want.PasswordHash)
	}
	if got.TOTPSecret != want.TOTPSecret {
		t.Errorf("%s: TOTP secret %q, want %q", what, got.TOTPSecret, want.TOTPSecret)
	}
	if got.TOTPPendingSecret != want.TOTPPendingSecret {
		t.Errorf("%s: pending TOTP secret %q, want %q", what, got.TOTPPendingSecret, want.TOTPPendingSecret)
	}
}

// checkEvent compares an event; bodies are compared as JSON values, since a
// store may re-encode them (Postgres jsonb reorders keys).
func checkEvent(t *testing.T, what string, got, want rooms.Event) {
	t.Helper()
	if got.ReferralID != want.ReferralID || got.Seq != want.Seq || got.Kind != want.Kind ||
		got.Author != want.Author || !sameTime(got.At, want.At) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
	if !sameJSON(got.Body, want.Body) {
		t.Errorf("%s: body %s, want %s", what, got.Body, want.Body)
	}
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	ca, _ := json.Marshal(va)
	cb, _ := json.Marshal(vb)
	return bytes.Equal(ca, cb)
}

// checkJSON compares two values by their JSON encoding.
func checkJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatalf("%s: encode result: %v", what, err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatalf("%s: encode expectation: %v", what, err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
	}
}

// ids returns the ids of referrals, in order.
func ids(rs []rooms.Referral) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}
