package rooms_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// world is a small hospital network for service tests.
type world struct {
	svc                                     *rooms.Service
	store                                   rooms.Store
	clock                                   *rooms.ManualClock
	pub                                     *recordingPublisher
	referrer, colleague, specialist, coord  rooms.Caller
	bedManager, outsider, foreignSpecialist rooms.Caller
}

type recordingPublisher struct {
	mu     sync.Mutex
	events []rooms.Event // guarded by mu
}

func (p *recordingPublisher) Publish(_ context.Context, e rooms.Event) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *recordingPublisher) published() []rooms.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// eachStore runs fn against the embedded store and Postgres.
func eachStore(t *testing.T, fn func(t *testing.T, w *world)) {
	eachEmptyStore(t, func(t *testing.T, s rooms.Store) { fn(t, newWorld(t, s)) })
}

// eachEmptyStore runs fn against a new, empty embedded store and a new,
// empty Postgres schema, in parallel subtests.
func eachEmptyStore(t *testing.T, fn func(t *testing.T, s rooms.Store)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pp.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
}

// friday1600 is Friday 20 November 2026, 16:00 in London (GMT).
var friday1600 = time.Date(2026, 11, 20, 16, 0, 0, 0, time.UTC)

func newWorld(t *testing.T, s rooms.Store) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{store: s, clock: rooms.NewManualClock(friday1600), pub: &recordingPublisher{}}
	w.svc = rooms.NewService(rooms.Config{Store: s, Clock: w.clock, Publisher: w.pub, Node: "test"})
	for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester"}, {ODS: "RBL", Name: "Wirral"}} {
		if err := w.svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		t.Fatal(err)
	}
	n := 0
	user := func(org string, roles ...rooms.Role) rooms.Caller {
		t.Helper()
		n++
		u, err := w.svc.CreateUser(ctx, rooms.System, rooms.NewUser{
			Name: fmt.Sprintf("User %d", n), Email: fmt.Sprintf("u%d@example.nhs.uk", n),
			ProfessionalBody: rooms.BodyGMC, RegistrationNumber: fmt.Sprintf("70000%02d", n),
			Organisation: org, Roles: roles, Status: rooms.UserActive, PasswordHash: "x",
		})
		if err != nil {
			t.Fatal(err)
		}
		return rooms.Caller{User: u, ClientAddr: "127.0.0.1"}
	}
	w.referrer = user("RJR", rooms.RoleClinician)
	w.colleague = user("RJR", rooms.RoleClinician)
	w.specialist = user("RET", rooms.RoleSpecialist)
	w.coord = user("RET", rooms.RoleCoordinator)
	w.bedManager = user("RET", rooms.RoleBedManager)
	w.outsider = user("RBL", rooms.RoleClinician)
	w.foreignSpecialist = user("RBL", rooms.RoleSpecialist)
	return w
}

func validForm() map[string]any {
	return map[string]any{
		"primary_cancer": "Prostate", "spinal_levels": "T6–T8", "neuro_limb_weakness": false,
		"neuro_bladder_bowel": false, "ambulatory_status": "independent", "steroids_given": true,
		"spinal_precautions": true,
	}
}

func newReferral(ref string, p rooms.Priority, submit bool) rooms.NewReferral {
	return rooms.NewReferral{
		Ref: ref, PathwayID: "mscc", Priority: p, Submit: submit,
		Patient:      rooms.Patient{NHSNumber: "943 476 5919", Name: "Test Patient", DateOfBirth: "1950-01-01", Sex: "female"},
		Form:         validForm(),
		ContactPhone: "01244 365000", ConsultantDiscussed: true,
	}
}

func (w *world) create(t *testing.T, ref string, p rooms.Priority) rooms.Referral {
	t.Helper()
	r, err := w.svc.CreateReferral(context.Background(), w.referrer, newReferral(ref, p, true))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (w *world) events(t *testing.T, id string) []rooms.Event {
	t.Helper()
	es, err := w.store.Events(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func (w *world) auditFor(t *testing.T, f rooms.AuditFilter) []rooms.AuditEntry {
	t.Helper()
	es, err := w.store.AuditLog(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func wantErr(t *testing.T, err error, code rooms.Code, field string) {
	t.Helper()
	var de *rooms.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v; want a %s error", err, code)
	}
	if de.Code != code || de.Field != field {
		t.Fatalf("error = %s/%q (%s); want %s/%q", de.Code, de.Field, de.Message, code, field)
	}
}

func TestCreateReferralSubmitsAndStartsTheTriageClock(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		r := w.create(t, "c1", rooms.PriorityRoutine)
		if r.Status != rooms.StatusSubmitted || r.HeadSeq != 2 {
			t.Fatalf("status %s head %d; want submitted at seq 2", r.Status, r.HeadSeq)
		}
		// Friday 16:00 routine → Monday 12:00.
		want := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		if r.TriageDueAt == nil || !r.TriageDueAt.Equal(want) {
			t.Fatalf("triage due %v; want %v", r.TriageDueAt, want)
		}
		if r.Patient.NHSNumber != "9434765919" {
			t.Fatalf("NHS number stored as %q; want normalised 9434765919", r.Patient.NHSNumber)
		}
		if len(r.Plan.Sections) != 8 || r.Plan.Sections[0].Name != "imaging" {
			t.Fatalf("plan %+v; want the 8 MSCC sections, imaging first", r.Plan.Sections)
		}
		es := w.events(t, r.ID)
		if len(es) != 2 || es[0].Kind != rooms.EventCreated || es[1].Kind != rooms.EventTransition {
			t.Fatalf("events %+v; want created then transition", es)
		}
		if got := w.pub.published(); len(got) != 2 || got[1].Seq != 2 {
			t.Fatalf("published %d events; want both, in order", len(got))
		}
		if a := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.create"}); len(a) != 1 || a[0].Outcome != rooms.OutcomeSuccess || a[0].PatientNHSNumber != "9434765919" {
			t.Fatalf("audit %+v; want one successful create naming the patient", a)
		}
	})
}

func TestRepeatedRefTakesEffectOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r1 := w.create(t, "same", rooms.PriorityUrgent)
		r2 := w.create(t, "same", rooms.PriorityUrgent)
		if r1.ID != r2.ID {
			t.Fatalf("repeat created a second referral %s", r2.ID)
		}
		list, err := w.store.Referrals(ctx, rooms.ReferralFilter{VisibleToUser: w.referrer.User.ID})
		if err != nil || len(list) != 1 {
			t.Fatalf("referrals %d (%v); want 1", len(list), err)
		}

		const racers = 12
		results := make([]rooms.Event, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				e, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "m1", ReferralID: r1.ID, Body: "hello"})
				if err != nil {
					t.Error(err)
				}
				results[i] = e
			})
		}
		wg.Wait()
		for _, e := range results {
			if e.Seq != results[0].Seq {
				t.Fatalf("racers saw seqs %d and %d; want one result", results[0].Seq, e.Seq)
			}
		}
		if es := w.events(t, r1.ID); len(es) != 3 {
			t.Fatalf("%d events; want 3 (created, submitted, one message)", len(es))
		}

		_, _, err = w.svc.Transition(ctx, w.referrer, rooms.Transition{Ref: "m1", ReferralID: r1.ID, To: rooms.StatusCancelled, Reason: "x"})
		wantErr(t, err, rooms.CodeInvalid, "ref")

		// Refs are the caller's own: another user's same ref is a new command.
		if _, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: "m1", ReferralID: r1.ID, Body: "hi"}); err != nil {
			t.Fatal(err)
		}
		if es := w.events(t, r1.ID); len(es) != 4 {
			t.Fatalf("%d events; want 4", len(es))
		}
	})
}

func TestConcurrentCommandsOnOneReferralGetGaplessSeqs(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityEmergency)
		callers := []rooms.Caller{w.referrer, w.specialist, w.coord, w.bedManager}
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				c := callers[i%len(callers)]
				if _, err := w.svc.PostMessage(ctx, c, rooms.PostMessage{Ref: fmt.Sprintf("m%d", i), ReferralID: r.ID, Body: "x"}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		es := w.events(t, r.ID)
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d; want gapless 1..n", i, e.Seq)
			}
		}
		if len(es) != 42 {
			t.Fatalf("%d events; want 42", len(es))
		}
		if _, broken, err := rooms.VerifyAudit(ctx, w.store); err != nil || broken != nil {
			t.Fatalf("audit verify: %v %v", broken, err)
		}
	})
}

func TestPlanEditsAreCompareAndSetPerSection(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityUrgent)
		edit := func(c rooms.Caller, ref, section string, base int64, text string) (rooms.Event, error) {
			e, rev, err := w.svc.EditPlan(ctx, c, rooms.EditPlan{Ref: ref, ReferralID: r.ID, Section: section, BaseRevision: base, Text: text})
			if err == nil && rev != base+1 {
				t.Errorf("edit %s on base %d answered revision %d", ref, base, rev)
			}
			return e, err
		}
		if _, err := edit(w.specialist, "p1", "imaging", 0, "MRI whole spine today"); err != nil {
			t.Fatal(err)
		}
		// A different section based on revision 0 does not conflict.
		if _, err := edit(w.referrer, "p2", "steroids", 0, "Dexamethasone 16 mg"); err != nil {
			t.Fatal(err)
		}
		_, err := edit(w.referrer, "p3", "imaging", 0, "overwrite")
		wantErr(t, err, rooms.CodeConflict, "base_revision")
		var de *rooms.Error
		errors.As(err, &de)
		if de.Current == nil || de.Current.Revision != 1 || de.Current.Text != "MRI whole spine today" {
			t.Fatalf("conflict carries %+v; want revision 1 with the specialist's text", de.Current)
		}
		if _, err := edit(w.referrer, "p4", "imaging", 1, "MRI done"); err != nil {
			t.Fatal(err)
		}
		_, err = edit(w.referrer, "p5", "not_a_section", 0, "x")
		wantErr(t, err, rooms.CodeInvalid, "section")

		got, err := w.svc.Referral(ctx, w.referrer, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s := got.Plan.Section("imaging"); s.Revision != 2 || s.Text != "MRI done" {
			t.Fatalf("imaging %+v; want revision 2 'MRI done'", s)
		}
		if s := got.Plan.Section("steroids"); s.Revision != 1 {
			t.Fatalf("steroids revision %d; want 1", s.Revision)
		}
		if got.HeadSeq != 5 {
			t.Fatalf("head %d; want 5 (refused edits append nothing)", got.HeadSeq)
		}
		if a := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.plan_edit", Outcome: rooms.OutcomeInvalid}); len(a) != 2 {
			t.Fatalf("%d refused plan edits audited; want 2", len(a))
		}
	})
}

func TestOutsidersCannotSeeOrTouchAReferral(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityUrgent)
		for _, c := range []rooms.Caller{w.outsider, w.foreignSpecialist} {
			_, err := w.svc.Referral(ctx, c, r.ID)
			wantErr(t, err, rooms.CodeNotFound, "")
			_, err = w.svc.PostMessage(ctx, c, rooms.PostMessage{Ref: "x", ReferralID: r.ID, Body: "hi"})
			wantErr(t, err, rooms.CodeNotFound, "")
			_, _, err = w.svc.Events(ctx, c, r.ID, 0, 0)
			wantErr(t, err, rooms.CodeNotFound, "")
			if err := w.svc.MarkRead(ctx, c, r.ID, 1); rooms.CodeOf(err) != rooms.CodeNotFound {
				t.Fatalf("MarkRead by outsider: %v; want not_found", err)
			}
			denied := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, ActorID: c.User.ID, Outcome: rooms.OutcomeDenied})
			if len(denied) != 4 {
				t.Fatalf("%d denials audited for %s; want 4", len(denied), c.User.Organisation)
			}
			list, err := w.svc.Referrals(ctx, c, rooms.ReferralFilter{})
			if err != nil || len(list) != 0 {
				t.Fatalf("outsider lists %d referrals (%v); want 0", len(list), err)
			}
		}
		// A missing referral looks the same as a hidden one.
		_, err := w.svc.Referral(ctx, w.outsider, rooms.NewID())
		wantErr(t, err, rooms.CodeNotFound, "")
		if es := w.events(t, r.ID); len(es) != 2 {
			t.Fatalf("%d events; want 2: outsiders changed something", len(es))
		}
		// The receiving team and participants see it.
		for _, c := range []rooms.Caller{w.referrer, w.specialist, w.coord, w.bedManager} {
			list, err := w.svc.Referrals(ctx, c, rooms.ReferralFilter{})
			if err != nil || len(list) != 1 {
				t.Fatalf("%s lists %d referrals (%v); want 1", c.User.Roles[0], len(list), err)
			}
		}
	})
}

func TestJourneyThroughTheStatusMachine(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityEmergency)
		move := func(c rooms.Caller, ref string, to rooms.Status, reason string, outcome map[string]any) error {
			_, _, err := w.svc.Transition(ctx, c, rooms.Transition{Ref: ref, ReferralID: r.ID, To: to, Reason: reason, Outcome: outcome})
			return err
		}
		wantErr(t, move(w.referrer, "t0", rooms.StatusInTriage, "", nil), rooms.CodeForbidden, "")
		wantErr(t, move(w.specialist, "t0b", rooms.StatusTransferred, "", nil), rooms.CodeInvalid, "to")
		wantErr(t, move(w.specialist, "t0c", "teleported", "", nil), rooms.CodeInvalid, "to")
		if err := move(w.coord, "t1", rooms.StatusInTriage, "", nil); err != nil {
			t.Fatal(err)
		}
		// A retry meets the status the first attempt left, which would
		// refuse the move; the ref's first result is the answer instead.
		if err := move(w.coord, "t1", rooms.StatusInTriage, "", nil); err != nil {
			t.Fatalf("retried transition: %v; want the first result", err)
		}
		wantErr(t, move(w.specialist, "t2", rooms.StatusAccepted, "", nil), rooms.CodeInvalid, "outcome.bed_type")
		if err := move(w.specialist, "t3", rooms.StatusAccepted, "", map[string]any{"bed_type": "spinal"}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, move(w.referrer, "t4", rooms.StatusCancelled, "changed mind", nil), rooms.CodeInvalid, "to")
		booking := map[string]any{"bed_type": "neurosurgical", "ward": "Ward 4 bed 12", "expected_at": "2026-11-21T09:00:00Z"}
		if err := move(w.bedManager, "t5", rooms.StatusTransferBooked, "", booking); err != nil {
			t.Fatal(err)
		}
		if err := move(w.specialist, "t6", rooms.StatusTransferred, "", map[string]any{"arrived_at": "2026-11-21T10:15:00Z"}); err != nil {
			t.Fatal(err)
		}
		got, err := w.svc.Referral(ctx, w.referrer, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != rooms.StatusTransferred || got.AssigneeID != w.coord.User.ID || got.HeadSeq != 6 {
			t.Fatalf("status %s assignee %s head %d; want transferred, claimed by the coordinator, seq 6", got.Status, got.AssigneeID, got.HeadSeq)
		}
		refused := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.transition"})
		outcomes := map[string]int{}
		for _, a := range refused {
			outcomes[a.Outcome]++
		}
		if outcomes[rooms.OutcomeSuccess] != 4 || outcomes[rooms.OutcomeDenied] != 1 || outcomes[rooms.OutcomeInvalid] != 4 {
			t.Fatalf("transition audit outcomes %v; want 4 success, 1 denied, 4 invalid", outcomes)
		}
	})
}

func TestInvalidReferralsStoreNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		cases := []struct {
			name  string
			edit  func(n *rooms.NewReferral)
			code  rooms.Code
			field string
		}{
			{"bad NHS check digit", func(n *rooms.NewReferral) { n.Patient.NHSNumber = "9434765918" }, rooms.CodeInvalid, "patient.nhs_number"},
			{"missing required form field", func(n *rooms.NewReferral) { delete(n.Form, "spinal_levels") }, rooms.CodeInvalid, "form.spinal_levels"},
			{"deficit without onset time", func(n *rooms.NewReferral) { n.Form["neuro_limb_weakness"] = true }, rooms.CodeInvalid, "form.neuro_onset_at"},
			{"unknown priority", func(n *rooms.NewReferral) { n.Priority = "soon" }, rooms.CodeInvalid, "priority"},
			{"unknown pathway", func(n *rooms.NewReferral) { n.PathwayID = "cardiac" }, rooms.CodeInvalid, "pathway"},
			{"no contact phone", func(n *rooms.NewReferral) { n.ContactPhone = " " }, rooms.CodeInvalid, "contact_phone"},
			{"consultant not consulted", func(n *rooms.NewReferral) { n.ConsultantDiscussed = false }, rooms.CodeInvalid, "consultant_discussed"},
			{"no ref", func(n *rooms.NewReferral) { n.Ref = "" }, rooms.CodeInvalid, "ref"},
			{"future birth", func(n *rooms.NewReferral) { n.Patient.DateOfBirth = "2030-01-01" }, rooms.CodeInvalid, "patient.date_of_birth"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := newReferral("r-"+tc.name, rooms.PriorityUrgent, true)
				tc.edit(&n)
				_, err := w.svc.CreateReferral(ctx, w.referrer, n)
				wantErr(t, err, tc.code, tc.field)
			})
		}
		_, err := w.svc.CreateReferral(ctx, w.bedManager, newReferral("bm", rooms.PriorityUrgent, true))
		wantErr(t, err, rooms.CodeForbidden, "")
		list, err := w.store.Referrals(ctx, rooms.ReferralFilter{VisibleToOrganisation: "RET"})
		if err != nil || len(list) != 0 {
			t.Fatalf("%d referrals stored (%v); want none", len(list), err)
		}
		if a := w.auditFor(t, rooms.AuditFilter{Event: "referral.create", Outcome: rooms.OutcomeInvalid}); len(a) != len(cases) {
			t.Fatalf("%d invalid creates audited; want %d", len(a), len(cases))
		}
	})
}

func TestReadMarkersOnlyRise(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityUrgent)
		if err := w.svc.MarkRead(ctx, w.specialist, r.ID, 2); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.MarkRead(ctx, w.specialist, r.ID, 1); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.MarkRead(ctx, w.specialist, r.ID, 3); rooms.CodeOf(err) != rooms.CodeInvalid {
			t.Fatalf("marking beyond the head: %v; want invalid", err)
		}
		if got, err := w.store.ReadMarker(ctx, r.ID, w.specialist.User.ID); err != nil || got != 2 {
			t.Fatalf("read marker %d (%v); want 2", got, err)
		}
	})
}

func TestSuspendedUsersCanDoNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityUrgent)
		suspended := w.specialist
		suspended.User.Status = rooms.UserSuspended
		_, err := w.svc.Referral(ctx, suspended, r.ID)
		wantErr(t, err, rooms.CodeForbidden, "")
		_, err = w.svc.PostMessage(ctx, suspended, rooms.PostMessage{Ref: "s", ReferralID: r.ID, Body: "x"})
		wantErr(t, err, rooms.CodeForbidden, "")
	})
}
