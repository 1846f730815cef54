package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// TestSchedulerTakeoverAfterSIGKILL runs two real node processes on one
// Postgres schema, with hundreds of referrals already past their triage
// deadline. The node running the triage clocks is killed (SIGKILL) while
// it raises their reminders; the other takes the clocks over and raises
// the rest. Counted in the store: every referral has exactly one breach
// reminder, and each coordinator exactly one notification of it.
func TestSchedulerTakeoverAfterSIGKILL(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// The referrals were submitted two hours ago: each is overdue and
	// owes its coordinators one "breached" reminder now.
	clock := rooms.NewManualClock(time.Now().UTC().Add(-2 * time.Hour))
	svc := rooms.NewService(rooms.Config{Store: store, Clock: clock, Node: "seed"})
	for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester"}} {
		if err := svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		t.Fatal(err)
	}
	mk := func(email, org string, role rooms.Role) rooms.User {
		u, err := svc.CreateUser(ctx, rooms.System, rooms.NewUser{Name: "User " + email, Email: email, ProfessionalBody: rooms.BodyGMC,
			RegistrationNumber: "7123456", Organisation: org, Roles: []rooms.Role{role}, Status: rooms.UserActive, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	referrer := rooms.Caller{User: mk("referrer@example.nhs.uk", "RJR", rooms.RoleClinician)}
	coords := []rooms.User{mk("c1@example.nhs.uk", "RET", rooms.RoleCoordinator), mk("c2@example.nhs.uk", "RET", rooms.RoleCoordinator)}
	const n = 200
	form := map[string]any{"primary_cancer": "Prostate adenocarcinoma", "spinal_levels": "T6–T8", "neuro_limb_weakness": true,
		"neuro_bladder_bowel": false, "ambulatory_status": "with_aid", "neuro_onset_at": "2026-11-30T06:00:00Z",
		"steroids_given": true, "spinal_precautions": true}
	var ids []string
	for i := range n {
		r, err := svc.CreateReferral(ctx, referrer, rooms.NewReferral{Ref: fmt.Sprint("k", i), PathwayID: "mscc", Priority: rooms.PriorityEmergency,
			Submit: true, Patient: rooms.Patient{NHSNumber: "9434765919", Name: "Test Patient", DateOfBirth: "1950-01-01", Sex: "female"},
			Form: form, ContactPhone: "01244 365000", ConsultantDiscussed: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	count := func() map[string]int {
		t.Helper()
		got := map[string]int{}
		for _, id := range ids {
			es, err := store.Events(ctx, id, 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Kind == rooms.EventReminder {
					got[id]++
				}
			}
		}
		return got
	}

	bin := buildNode(t)
	type proc struct {
		cmd *exec.Cmd
		out *syncBuffer
	}
	start := func(name string) proc {
		cmd := exec.Command(bin, "serve")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "PATIENTPASS_ADDR=127.0.0.1:0", "PATIENTPASS_NODE="+name,
			"LOG_FORMAT=json", "PATIENTPASS_DATA_DIR="+t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		t.Cleanup(func() {
			once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		})
		return proc{cmd, out}
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Time {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s", limit, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Now()
	}
	leads := func(p proc) bool { return strings.Contains(p.out.String(), "this node runs the triage clocks") }

	a := start("node-a")
	waitFor("node A to run the clocks", 60*time.Second, func() bool { return leads(a) })
	b := start("node-b")
	waitFor("node A's first reminders", 60*time.Second, func() bool { return len(count()) >= 20 })
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = a.cmd.Wait()
	before := len(count())
	if before >= n {
		t.Fatalf("node A raised all %d reminders before it was killed; the test needs more referrals", n)
	}
	took := waitFor("node B to take the clocks over", 30*time.Second, func() bool { return leads(b) }).Sub(killed)
	waitFor("every reminder", 60*time.Second, func() bool { return len(count()) == n })
	time.Sleep(200 * time.Millisecond) // anything raised twice would show now
	got := count()
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("referral %s has %d reminders; want exactly 1", id, got[id])
		}
	}
	for _, c := range coords {
		ns, err := store.Notifications(ctx, c.ID, rooms.NotificationFilter{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		reminders := 0
		for _, x := range ns {
			if x.Kind == rooms.NotifyReminder {
				reminders++
			}
		}
		if reminders != n {
			t.Fatalf("coordinator %s has %d reminder notifications; want %d", c.Email, reminders, n)
		}
	}
	if bytes.Contains([]byte(b.out.String()), []byte(`"level":"error"`)) {
		t.Fatalf("node B logged an error:\n%s", b.out)
	}
	t.Logf("node A raised %d of %d reminders before SIGKILL; node B took over %s later and raised the rest", before, n, took.Round(time.Millisecond))
}
