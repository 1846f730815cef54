package main

import (
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// TestDemoSeedsACoherentDay seeds the demo at a fixed now, an afternoon and
// just after midnight, and reads back what a clinician, the board and the
// wallboard would see.
func TestDemoSeedsACoherentDay(t *testing.T) {
	for _, now := range []time.Time{
		time.Date(2026, time.July, 14, 14, 5, 0, 0, time.UTC),  // Tuesday afternoon (BST)
		time.Date(2026, time.March, 16, 0, 20, 0, 0, time.UTC), // Monday, 20 minutes into the day (GMT)
	} {
		t.Run(now.Format(time.RFC3339), func(t *testing.T) { testDemoDay(t, now) })
	}
}

func testDemoDay(t *testing.T, now time.Time) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patientpass.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	seed := func(at time.Time) {
		t.Helper()
		svc := rooms.NewService(rooms.Config{Store: store, Clock: rooms.NewManualClock(at), Node: "test"})
		a := &app{stdout: io.Discard, stderr: io.Discard}
		if err := a.seedDemo(ctx, svc, store, config{Node: "test", DemoPassword: "demo-password-for-tests"}); err != nil {
			t.Fatal(err)
		}
	}
	seed(now)
	pw, err := store.Pathway(ctx, "mscc")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := store.Referrals(ctx, rooms.ReferralFilter{})
	if err != nil {
		t.Fatal(err)
	}
	midnight := func() time.Time {
		l := now.In(rooms.London)
		return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, rooms.London)
	}()

	nhs := map[string]bool{}
	statuses := map[rooms.Status]int{}
	awaitingBed := map[string]int{}
	var overdue, dueSoon, events int
	for _, r := range rs {
		name := string(r.Priority) + " " + string(r.Status) + " " + r.Patient.Name
		if err := pw.ValidateForm(r.Form); err != nil {
			t.Errorf("%s: form: %v", name, err)
		}
		if err := rooms.ValidateNHSNumber("nhs", r.Patient.NHSNumber); err != nil || nhs[r.Patient.NHSNumber] {
			t.Errorf("%s: NHS number %s invalid (%v) or repeated", name, r.Patient.NHSNumber, err)
		}
		nhs[r.Patient.NHSNumber] = true
		checkMRILevels(t, name, r.Form)
		deficit := r.Form["neuro_limb_weakness"] == true || r.Form["neuro_bladder_bowel"] == true
		if deficit != (r.Priority == rooms.PriorityEmergency) {
			t.Errorf("%s: neurological deficit %v does not fit its priority", name, deficit)
		}
		if !deficit && r.Form["ambulatory_status"] != "independent" {
			t.Errorf("%s: no deficit but ambulatory status %v", name, r.Form["ambulatory_status"])
		}

		statuses[r.Status]++
		if r.Status.AwaitingTriage() {
			soon, late := rooms.DueStatus(*r.SubmittedAt, *r.TriageDueAt, now)
			if soon {
				dueSoon++
			}
			if late {
				overdue++
			}
		}
		if r.Status == rooms.StatusAccepted {
			bed, _ := r.Outcomes[rooms.StatusAccepted]["bed_type"].(string)
			awaitingBed[bed]++
		}

		es, err := store.Events(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		events += len(es)
		for _, e := range es {
			if e.At.After(now) {
				t.Errorf("%s: event %d (%s) at %s, after now %s", name, e.Seq, e.Kind, e.At, now)
			}
		}
		if last := es[len(es)-1]; (r.Status == rooms.StatusTransferred || r.Status == rooms.StatusManagedRemotely) && last.At.Before(midnight) {
			t.Errorf("%s: reached %s at %s, not today (from %s)", name, r.Status, last.At, midnight)
		}
	}
	if overdue == 0 || dueSoon == 0 {
		t.Errorf("open referrals: %d overdue, %d due soon; want at least one of each", overdue, dueSoon)
	}
	for _, bed := range pw.BedTypes {
		if awaitingBed[bed] == 0 {
			t.Errorf("no accepted referral awaiting a bed of type %s (%v)", bed, awaitingBed)
		}
	}
	for _, s := range []rooms.Status{rooms.StatusSubmitted, rooms.StatusInTriage, rooms.StatusMoreInfoNeeded,
		rooms.StatusTransferBooked, rooms.StatusTransferred, rooms.StatusManagedRemotely, rooms.StatusDeclined} {
		if statuses[s] == 0 {
			t.Errorf("no referral %s (%v)", s, statuses)
		}
	}

	// Seeded again an hour later, as on a restart: nothing added.
	seed(now.Add(time.Hour))
	again, err := store.Referrals(ctx, rooms.ReferralFilter{})
	if err != nil {
		t.Fatal(err)
	}
	eventsAgain := 0
	for _, r := range again {
		es, err := store.Events(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		eventsAgain += len(es)
	}
	if len(again) != len(rs) || eventsAgain != events {
		t.Errorf("seeded again: %d referrals, %d events; want %d and %d", len(again), eventsAgain, len(rs), events)
	}
}

var vertebra = regexp.MustCompile(`\b([CTLS])(\d{1,2})\b`)

// vertebraIndex orders C1…C7, T1…T12, L1…L5, S1…S5 down the spine.
func vertebraIndex(region string, n int) int {
	return map[string]int{"C": 0, "T": 7, "L": 19, "S": 24}[region] + n
}

// checkMRILevels checks that every vertebra the MRI report names lies within
// the form's spinal levels ("T10–T11", "L1", "T3, T7") and that it names one.
func checkMRILevels(t *testing.T, name string, form map[string]any) {
	t.Helper()
	report, _ := form["mri_report"].(string)
	if report == "" {
		return
	}
	levels := map[int]bool{}
	for _, part := range strings.Split(form["spinal_levels"].(string), ",") {
		var ends []int
		for _, m := range vertebra.FindAllStringSubmatch(part, -1) {
			n, _ := strconv.Atoi(m[2])
			ends = append(ends, vertebraIndex(m[1], n))
		}
		if len(ends) == 0 {
			t.Fatalf("%s: spinal levels %q name no vertebra", name, form["spinal_levels"])
		}
		for i := ends[0]; i <= ends[len(ends)-1]; i++ {
			levels[i] = true
		}
	}
	named := vertebra.FindAllStringSubmatch(report, -1)
	if len(named) == 0 {
		t.Errorf("%s: MRI report names no level: %q", name, report)
	}
	for _, m := range named {
		n, _ := strconv.Atoi(m[2])
		if !levels[vertebraIndex(m[1], n)] {
			t.Errorf("%s: MRI report names %s, outside spinal levels %q", name, m[0], form["spinal_levels"])
		}
	}
}
