package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// recordingWatcher keeps what the service told the live views, in order.
type recordingWatcher struct {
	mu      sync.Mutex
	boards  []rooms.BoardUpdate // guarded by mu
	walls   []rooms.Wallboard   // guarded by mu
	users   map[string][]rooms.UserUpdate
	notices []*rooms.SystemNotice
}

func (r *recordingWatcher) BoardChanged(_ string, u rooms.BoardUpdate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.boards = append(r.boards, u)
}

func (r *recordingWatcher) WallboardChanged(_ string, w rooms.Wallboard) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.walls = append(r.walls, w)
}

func (r *recordingWatcher) Notified(uid string, u rooms.UserUpdate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = map[string][]rooms.UserUpdate{}
	}
	r.users[uid] = append(r.users[uid], u)
}

func (r *recordingWatcher) NoticeChanged(n *rooms.SystemNotice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, n)
}

// watched gives w's service a recording watcher, on the same store and
// clock.
func (w *world) watched() *recordingWatcher {
	rec := &recordingWatcher{}
	w.svc = rooms.NewService(rooms.Config{Store: w.store, Clock: w.clock, Publisher: w.pub, Watcher: rec, Node: "test"})
	return rec
}

func (w *world) user(t *testing.T, email string, org string, roles ...rooms.Role) rooms.Caller {
	t.Helper()
	u, err := w.svc.CreateUser(context.Background(), rooms.System, rooms.NewUser{
		Name: "User " + email, Email: email, ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7100001",
		Organisation: org, Roles: roles, Status: rooms.UserActive, PasswordHash: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	return rooms.Caller{User: u, ClientAddr: "127.0.0.1"}
}

// reminders returns the reasons of the reminder events of a referral, in
// order.
func (w *world) reminders(t *testing.T, id string) []rooms.ReminderReason {
	t.Helper()
	var out []rooms.ReminderReason
	for _, e := range w.events(t, id) {
		if e.Kind == rooms.EventReminder {
			var b rooms.ReminderBody
			if err := json.Unmarshal(e.Body, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Reason)
		}
	}
	return out
}

// notified counts the notifications of kind the user holds.
func (w *world) notified(t *testing.T, c rooms.Caller, kind string) int {
	t.Helper()
	ns, err := w.store.Notifications(context.Background(), c.User.ID, rooms.NotificationFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range ns {
		if x.Kind == kind {
			n++
		}
	}
	return n
}

func (w *world) raise(t *testing.T, at time.Time) int {
	t.Helper()
	w.clock.Set(at)
	n, err := w.svc.RaiseDueReminders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (w *world) move(t *testing.T, c rooms.Caller, ref, id string, to rooms.Status, reason string, outcome map[string]any) {
	t.Helper()
	if _, _, err := w.svc.Transition(context.Background(), c, rooms.Transition{Ref: ref, ReferralID: id, To: to, Reason: reason, Outcome: outcome}); err != nil {
		t.Fatalf("move to %s: %v", to, err)
	}
}

// tuesday10 is Tuesday 1 December 2026, 10:00 in London (GMT).
var tuesday10 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestEmergencyTriageClock(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		coord2 := w.user(t, "coord2@example.nhs.uk", "RET", rooms.RoleCoordinator)
		w.clock.Set(tuesday10)
		r := w.create(t, "e1", rooms.PriorityEmergency)
		if want := tuesday10.Add(time.Hour); !r.TriageDueAt.Equal(want) {
			t.Fatalf("due %v; want %v", r.TriageDueAt, want)
		}
		for _, c := range []rooms.Caller{w.coord, coord2, w.specialist} {
			if n := w.notified(t, c, rooms.NotifySubmitted); n != 1 {
				t.Fatalf("%s told of the submission %d times; want once", c.User.Email, n)
			}
		}
		if n := w.notified(t, w.bedManager, rooms.NotifySubmitted); n != 0 {
			t.Fatalf("bed manager told of a submission; only coordinators and specialists are")
		}
		steps := []struct {
			at   time.Duration
			want int
		}{
			{44 * time.Minute, 0}, {45 * time.Minute, 1}, {50 * time.Minute, 0}, {time.Hour, 1},
			{90 * time.Minute, 0}, {2 * time.Hour, 1}, {2*time.Hour + time.Minute, 0},
		}
		for _, s := range steps {
			if got := w.raise(t, tuesday10.Add(s.at)); got != s.want {
				t.Fatalf("at 10:00+%s raised %d reminders; want %d", s.at, got, s.want)
			}
		}
		want := []rooms.ReminderReason{rooms.ReminderDueSoon, rooms.ReminderBreached, rooms.ReminderBreachedAgain}
		if got := w.reminders(t, r.ID); !slices.Equal(got, want) {
			t.Fatalf("reminders %v; want %v", got, want)
		}
		for _, c := range []rooms.Caller{w.coord, coord2} {
			if n := w.notified(t, c, rooms.NotifyReminder); n != 3 {
				t.Fatalf("%s got %d reminders; want 3 (due soon, breached, again at 12:00)", c.User.Email, n)
			}
		}
		if n := w.notified(t, w.specialist, rooms.NotifyReminder); n != 0 {
			t.Fatalf("specialist got %d triage reminders; they go to coordinators", n)
		}
		// Claiming it does not stop the clock; a triage decision does.
		w.clock.Set(tuesday10.Add(2*time.Hour + 10*time.Minute))
		w.move(t, w.coord, "claim", r.ID, rooms.StatusInTriage, "", nil)
		if got := w.raise(t, tuesday10.Add(3*time.Hour)); got != 1 {
			t.Fatalf("in triage at 13:00: %d reminders; want 1 (still not triaged)", got)
		}
		w.clock.Set(tuesday10.Add(3*time.Hour + 5*time.Minute))
		w.move(t, w.specialist, "accept", r.ID, rooms.StatusAccepted, "", map[string]any{"bed_type": "spinal"})
		for _, at := range []time.Duration{4 * time.Hour, 5 * time.Hour, 30 * time.Hour} {
			if got := w.raise(t, tuesday10.Add(at)); got != 0 {
				t.Fatalf("after triage, at +%s: %d reminders; want none", at, got)
			}
		}
		got, err := w.store.Referral(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TriagedAt == nil || !got.TriagedAt.Equal(tuesday10.Add(3*time.Hour+5*time.Minute)) || got.ReminderAt != nil {
			t.Fatalf("triaged at %v, next reminder %v; want 13:05 and none", got.TriagedAt, got.ReminderAt)
		}
		if a := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.reminder"}); len(a) != 4 {
			t.Fatalf("%d reminder audit entries; want 4", len(a))
		}
	})
}

func TestRoutineBeforeBankHolidayMondayIsDueTuesdayNoon(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		// Friday 28 August 2026, 16:00 BST; Monday 31 August is the summer
		// bank holiday.
		w.clock.Set(time.Date(2026, 8, 28, 15, 0, 0, 0, time.UTC))
		r := w.create(t, "r1", rooms.PriorityRoutine)
		want := time.Date(2026, 9, 1, 11, 0, 0, 0, time.UTC) // 12:00 BST
		if !r.TriageDueAt.Equal(want) {
			t.Fatalf("due %v; want Tuesday 1 September 12:00 London", r.TriageDueAt)
		}
	})
}

func TestMoreInformationRemindsTheReferrer(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		w.clock.Set(tuesday10)
		r := w.create(t, "m1", rooms.PriorityUrgent)
		if _, err := w.svc.AddParticipant(ctx, w.referrer, rooms.AddParticipant{Ref: "add", ReferralID: r.ID, UserID: w.colleague.User.ID}); err != nil {
			t.Fatal(err)
		}
		w.clock.Set(tuesday10.Add(time.Hour))
		w.move(t, w.specialist, "ask", r.ID, rooms.StatusMoreInfoNeeded, "Please send the MRI report", nil)
		asked := tuesday10.Add(time.Hour)
		for _, s := range []struct {
			at   time.Duration
			want int
		}{{23 * time.Hour, 0}, {24 * time.Hour, 1}, {30 * time.Hour, 0}, {48 * time.Hour, 1}, {96 * time.Hour, 0}} {
			if got := w.raise(t, asked.Add(s.at)); got != s.want {
				t.Fatalf("%s after asking: %d reminders; want %d", s.at, got, s.want)
			}
		}
		if got := w.reminders(t, r.ID); !slices.Equal(got, []rooms.ReminderReason{rooms.ReminderMoreInfo24h, rooms.ReminderMoreInfo48h}) {
			t.Fatalf("reminders %v", got)
		}
		for _, c := range []rooms.Caller{w.referrer, w.colleague} {
			if n := w.notified(t, c, rooms.NotifyReminder); n != 2 {
				t.Fatalf("%s got %d reminders; want 2", c.User.Email, n)
			}
		}
		if n := w.notified(t, w.coord, rooms.NotifyReminder); n != 0 {
			t.Fatalf("coordinator got %d more-information reminders; they are the referrer's", n)
		}
	})
}

func TestASchedulerThatWasDownSendsOneReminderNotABurst(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		w.clock.Set(tuesday10)
		r := w.create(t, "d1", rooms.PriorityEmergency)
		// Down from before 10:45 until 12:30: the breach is told once; due
		// soon and the 12:00 repeat are superseded.
		if got := w.raise(t, tuesday10.Add(150*time.Minute)); got != 1 {
			t.Fatalf("raised %d; want 1", got)
		}
		if got := w.raise(t, tuesday10.Add(150*time.Minute)); got != 0 {
			t.Fatalf("raised %d again; want 0", got)
		}
		if got := w.raise(t, tuesday10.Add(3*time.Hour)); got != 1 {
			t.Fatalf("at 13:00 raised %d; want the hourly repeat", got)
		}
		if got := w.reminders(t, r.ID); !slices.Equal(got, []rooms.ReminderReason{rooms.ReminderBreached, rooms.ReminderBreachedAgain}) {
			t.Fatalf("reminders %v", got)
		}
	})
}

func TestRemindersAreRaisedOnceByConcurrentSchedulers(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		w.clock.Set(tuesday10)
		var ids []string
		for i := range 10 {
			ids = append(ids, w.create(t, fmt.Sprintf("c%d", i), rooms.PriorityEmergency).ID)
		}
		w.clock.Set(tuesday10.Add(time.Hour))
		var wg sync.WaitGroup
		total := make(chan int, 8)
		for range 8 {
			wg.Go(func() {
				n, err := w.svc.RaiseDueReminders(context.Background())
				if err != nil {
					t.Error(err)
				}
				total <- n
			})
		}
		wg.Wait()
		close(total)
		sum := 0
		for n := range total {
			sum += n
		}
		if sum != 10 {
			t.Fatalf("8 concurrent passes raised %d reminders; want 10, one per referral", sum)
		}
		for _, id := range ids {
			if got := w.reminders(t, id); !slices.Equal(got, []rooms.ReminderReason{rooms.ReminderBreached}) {
				t.Fatalf("referral %s reminders %v; want one breach", id, got)
			}
		}
	})
}

func TestNotificationsGoToThoseConcerned(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		rec := w.watched()
		r := w.create(t, "n1", rooms.PriorityUrgent)
		w.move(t, w.coord, "claim", r.ID, rooms.StatusInTriage, "", nil) // the coordinator is now the assignee
		if _, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: "m1", ReferralID: r.ID, Body: "Seen the scan"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := w.svc.EditPlan(ctx, w.referrer, rooms.EditPlan{Ref: "p1", ReferralID: r.ID, Section: "imaging", Text: "MRI done"}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			who  rooms.Caller
			kind string
			want int
			why  string
		}{
			{w.referrer, rooms.NotifyStatus, 1, "the claim is a status change of their referral"},
			{w.referrer, rooms.NotifyMessage, 1, "a participant"},
			{w.referrer, rooms.NotifyPlanEdit, 0, "they edited it themselves"},
			{w.coord, rooms.NotifyMessage, 1, "the assignee"},
			{w.coord, rooms.NotifyPlanEdit, 1, "the assignee"},
			{w.coord, rooms.NotifyStatus, 0, "they claimed it themselves"},
			{w.specialist, rooms.NotifyMessage, 0, "they wrote it"},
			{w.specialist, rooms.NotifyPlanEdit, 0, "neither participant nor assignee"},
			{w.outsider, rooms.NotifyMessage, 0, "not concerned"},
		}
		for _, c := range cases {
			if got := w.notified(t, c.who, c.kind); got != c.want {
				t.Errorf("%s has %d %s notifications; want %d (%s)", c.who.User.Email, got, c.kind, c.want, c.why)
			}
		}
		ns, unread, err := w.svc.Notifications(ctx, w.coord, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		if unread != len(ns) || unread != 3 { // submitted, message, plan edit
			t.Fatalf("coordinator: %d unread listed, count %d; want 3", len(ns), unread)
		}
		for i := 1; i < len(ns); i++ {
			if ns[i-1].ID <= ns[i].ID {
				t.Fatalf("notifications not newest first: %s then %s", ns[i-1].ID, ns[i].ID)
			}
		}
		for _, n := range ns {
			if n.ReferralID != r.ID || n.Title == "" || slices.Contains([]string{r.Patient.Name, r.Patient.NHSNumber}, n.Title) {
				t.Fatalf("notification %+v", n)
			}
		}
		// Marking up to the middle one leaves the newest unread.
		left, err := w.svc.MarkNotificationsRead(ctx, w.coord, ns[1].ID, nil)
		if err != nil || left != 1 {
			t.Fatalf("mark read up to the second newest: %d unread, %v; want 1", left, err)
		}
		if left, err := w.svc.MarkNotificationsRead(ctx, w.referrer, "", []string{ns[0].ID}); err != nil || left == 0 {
			t.Fatalf("another user's id marked read: %d left, %v", left, err)
		}
		if left, err := w.svc.MarkNotificationsRead(ctx, w.coord, "", []string{ns[0].ID}); err != nil || left != 0 {
			t.Fatalf("mark read by id: %d unread, %v; want 0", left, err)
		}
		_, err = w.svc.MarkNotificationsRead(ctx, w.coord, "not-an-id", nil)
		wantErr(t, err, rooms.CodeInvalid, "up_to")
		_, err = w.svc.MarkNotificationsRead(ctx, w.coord, "", nil)
		wantErr(t, err, rooms.CodeInvalid, "up_to")
		// The live feed was told of each notification, and of the counts.
		rec.mu.Lock()
		defer rec.mu.Unlock()
		live := rec.users[w.coord.User.ID]
		if len(live) != 5 || live[0].Notification == nil || live[4].Unread == nil || *live[4].Unread != 0 {
			t.Fatalf("coordinator's live updates %+v; want 3 notifications then 2 counts", live)
		}
	})
}

func TestBoardUpdatesFollowTheReferral(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		rec := w.watched()
		w.clock.Set(tuesday10)
		later := w.create(t, "b1", rooms.PriorityRoutine)
		sooner := w.create(t, "b2", rooms.PriorityEmergency)
		w.clock.Set(tuesday10.Add(50 * time.Minute))
		b, err := w.svc.Board(ctx, w.coord, "mscc")
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Referrals) != 2 || b.Referrals[0].ID != sooner.ID || b.Referrals[1].ID != later.ID {
			t.Fatalf("board %+v; want the emergency first", b.Referrals)
		}
		top := b.Referrals[0]
		if !top.DueSoon || top.Overdue || top.Unread == nil || *top.Unread != 2 || *top.TimeLeftSeconds != 600 {
			t.Fatalf("top item %+v; want due soon, 2 unread, 10 minutes left", top)
		}
		w.move(t, w.coord, "claim", sooner.ID, rooms.StatusInTriage, "", nil)
		w.move(t, w.specialist, "decline", sooner.ID, rooms.StatusDeclined, "Not MSCC: mechanical pain", nil)
		rec.mu.Lock()
		ups := slices.Clone(rec.boards)
		rec.mu.Unlock()
		var seen []string
		for _, u := range ups {
			switch {
			case u.Referral != nil && u.Referral.ID == sooner.ID:
				seen = append(seen, string(u.Referral.Status))
			case u.Removed == sooner.ID:
				seen = append(seen, "removed")
			}
		}
		if !slices.Equal(seen, []string{"submitted", "in_triage", "removed"}) {
			t.Fatalf("board updates for the emergency %v; want it to appear, move and leave", seen)
		}
		_, err = w.svc.Board(ctx, w.outsider, "mscc")
		wantErr(t, err, rooms.CodeNotFound, "")
		err = w.svc.AuthorizeBoard(ctx, w.referrer, "mscc", "board.view")
		wantErr(t, err, rooms.CodeNotFound, "")
		if a := w.auditFor(t, rooms.AuditFilter{ActorID: w.referrer.User.ID, Event: "board.view"}); len(a) != 1 || a[0].Outcome != rooms.OutcomeDenied {
			t.Fatalf("refused board view audited as %+v", a)
		}
	})
}

func TestDisplaysAreReadOnlyAndRevocable(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		admin := w.admin(t)
		_, _, err := w.svc.CreateDisplay(ctx, admin, " ")
		wantErr(t, err, rooms.CodeInvalid, "name")
		_, _, err = w.svc.CreateDisplay(ctx, w.coord, "Bed office")
		wantErr(t, err, rooms.CodeForbidden, "")
		d, token, err := w.svc.CreateDisplay(ctx, admin, "Bed office")
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.svc.DisplayByToken(ctx, token)
		if err != nil || got.ID != d.ID || got.Organisation != "RET" {
			t.Fatalf("display by token: %+v, %v", got, err)
		}
		c := rooms.DisplayCaller(got, "127.0.0.1")
		if err := w.svc.AuthorizeWallboard(ctx, c, "wallboard.view"); err != nil {
			t.Fatalf("display refused its wallboard: %v", err)
		}
		r := w.create(t, "x1", rooms.PriorityUrgent)
		_, err = w.svc.PostMessage(ctx, c, rooms.PostMessage{Ref: "d1", ReferralID: r.ID, Body: "hello"})
		wantErr(t, err, rooms.CodeForbidden, "")
		_, err = w.svc.Referral(ctx, c, r.ID)
		wantErr(t, err, rooms.CodeForbidden, "")
		_, err = w.svc.Board(ctx, c, "mscc")
		wantErr(t, err, rooms.CodeForbidden, "")
		if _, err := w.svc.RevokeDisplay(ctx, admin, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.DisplayByToken(ctx, token); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Fatalf("revoked display's token still works: %v", err)
		}
		_, err = w.svc.RevokeDisplay(ctx, admin, d.ID)
		wantErr(t, err, rooms.CodeNotFound, "")
	})
}

func TestSystemNotices(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		rec := w.watched()
		admin := w.admin(t)
		_, err := w.svc.PostNotice(ctx, admin, "panic", "x")
		wantErr(t, err, rooms.CodeInvalid, "level")
		_, err = w.svc.PostNotice(ctx, admin, rooms.NoticeInfo, "  ")
		wantErr(t, err, rooms.CodeInvalid, "message")
		_, err = w.svc.PostNotice(ctx, w.coord, rooms.NoticeInfo, "hello")
		wantErr(t, err, rooms.CodeForbidden, "")
		if n, err := w.svc.Notice(ctx, w.referrer); err != nil || n != nil {
			t.Fatalf("notice before any: %+v, %v", n, err)
		}
		if _, err := w.svc.PostNotice(ctx, admin, rooms.NoticeDegraded, "Radiology PACS link down"); err != nil {
			t.Fatal(err)
		}
		n2, err := w.svc.PostNotice(ctx, admin, rooms.NoticeOutage, "Planned maintenance 22:00–22:30")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.svc.Notice(ctx, w.referrer); err != nil || n == nil || n.ID != n2.ID {
			t.Fatalf("notice in force %+v, %v; want the latest", n, err)
		}
		if err := w.svc.ClearNotice(ctx, admin); err != nil {
			t.Fatal(err)
		}
		wantErr(t, w.svc.ClearNotice(ctx, admin), rooms.CodeNotFound, "")
		if n, err := w.svc.Notice(ctx, w.referrer); err != nil || n != nil {
			t.Fatalf("notice after clearing: %+v, %v", n, err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.notices) != 3 || rec.notices[2] != nil {
			t.Fatalf("live notices %v; want two posts then a clear", rec.notices)
		}
	})
}

func TestAuditTrailIsTheOrganisationsAndPaged(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		admin := w.admin(t)
		r := w.create(t, "a1", rooms.PriorityUrgent)
		for i := range 5 {
			if _, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: fmt.Sprint("m", i), ReferralID: r.ID, Body: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		// An interaction of another organisation's, about nothing of RET's.
		_ = w.svc.AuditCaller(ctx, w.outsider, rooms.ActionRead, "referral.list", nil, rooms.OutcomeSuccess, "")
		var all []rooms.AuditEntry
		q := rooms.AuditQuery{ReferralID: r.ID, Limit: 2}
		for pages := 0; ; pages++ {
			p, err := w.svc.AuditTrail(ctx, admin, q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, p.Entries...)
			if p.Next == "" {
				break
			}
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			q.Cursor = p.Next
		}
		if len(all) != 6 { // create and five messages
			t.Fatalf("%d entries about the referral; want 6", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].ID <= all[i].ID {
				t.Fatalf("not newest first across pages")
			}
		}
		p, err := w.svc.AuditTrail(ctx, admin, rooms.AuditQuery{UserID: w.outsider.User.ID})
		if err != nil || len(p.Entries) != 0 {
			t.Fatalf("another organisation's entries shown: %d, %v", len(p.Entries), err)
		}
		_, err = w.svc.AuditTrail(ctx, admin, rooms.AuditQuery{Action: "steal"})
		wantErr(t, err, rooms.CodeInvalid, "action")
		_, err = w.svc.AuditTrail(ctx, admin, rooms.AuditQuery{From: "yesterday"})
		wantErr(t, err, rooms.CodeInvalid, "from")
		_, err = w.svc.AuditTrail(ctx, w.coord, rooms.AuditQuery{})
		wantErr(t, err, rooms.CodeForbidden, "")
		if a := w.auditFor(t, rooms.AuditFilter{ActorID: admin.User.ID, Event: "audit.read"}); len(a) < 5 {
			t.Fatalf("reading the trail audited %d times; want every read", len(a))
		}
	})
}

// TestSchedulerTakeover runs a scheduler on each of two nodes (stores of
// their own on one database); the one that holds the lock is killed in the
// middle of raising a batch of reminders, and the other takes over. Every
// reminder is then in the store exactly once.
func TestSchedulerTakeover(t *testing.T) {
	open := map[string]func(t *testing.T) (func() rooms.Store, func(rooms.Store)){
		"embedded": func(t *testing.T) (func() rooms.Store, func(rooms.Store)) {
			path := filepath.Join(t.TempDir(), "pp.db")
			return func() rooms.Store {
				s, err := sqlite.Open(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}, func(s rooms.Store) { s.Close() }
		},
		"postgres": func(t *testing.T) (func() rooms.Store, func(rooms.Store)) {
			url := pgtest.URL(t)
			return func() rooms.Store {
				s, err := postgres.Open(context.Background(), url)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}, func(s rooms.Store) { s.Close() }
		},
	}
	for name, mk := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			newStore, kill := mk(t)
			storeA, storeB := newStore(), newStore()
			t.Cleanup(func() { kill(storeB) })
			w := newWorld(t, storeA)
			coord2 := w.user(t, "coord2@example.nhs.uk", "RET", rooms.RoleCoordinator)
			w.clock.Set(tuesday10)
			const n = 30
			var ids []string
			for i := range n {
				ids = append(ids, w.create(t, fmt.Sprintf("k%d", i), rooms.PriorityEmergency).ID)
			}
			w.clock.Set(tuesday10.Add(time.Hour)) // every one breaches now

			// Node A holds the lock first, and is killed after its 10th
			// reminder commits.
			var once sync.Once
			killed := make(chan struct{})
			pubA := publishFunc(func(e rooms.Event) {
				if e.Kind != rooms.EventReminder {
					return
				}
				if len(w.reminderCount(t, storeB)) >= 10 {
					once.Do(func() { close(killed) })
				}
			})
			svcA := rooms.NewService(rooms.Config{Store: storeA, Clock: w.clock, Publisher: pubA, Node: "a"})
			svcB := rooms.NewService(rooms.Config{Store: storeB, Clock: w.clock, Node: "b"})
			if held, err := storeA.HoldSchedulerLock(context.Background()); err != nil || !held {
				t.Fatalf("node A could not take the free lock: %v %v", held, err)
			}
			ctxA, stopA := context.WithCancel(context.Background())
			ctxB, stopB := context.WithCancel(context.Background())
			defer stopB()
			leadB := make(chan time.Time, 1)
			var doneA, doneB sync.WaitGroup
			doneA.Go(func() {
				rooms.NewScheduler(svcA, 10*time.Millisecond, nil, nil).Run(ctxA)
			})
			// Node B runs all along, waiting for the lock.
			doneB.Go(func() {
				rooms.NewScheduler(svcB, 10*time.Millisecond, nil, func(leading bool) {
					if leading {
						leadB <- time.Now()
					}
				}).Run(ctxB)
			})
			<-killed
			killedAt := time.Now()
			select {
			case <-leadB:
				t.Fatal("node B ran the clocks while node A held the lock")
			default:
			}
			stopA()
			kill(storeA) // its lock's connection goes with it
			doneA.Wait()
			select {
			case at := <-leadB:
				t.Logf("node B took over %s after node A was killed", at.Sub(killedAt).Round(time.Millisecond))
			case <-time.After(30 * time.Second):
				t.Fatal("node B never took the scheduler over")
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(w.reminderCount(t, storeB)) < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			stopB()
			doneB.Wait()
			counts := w.reminderCount(t, storeB)
			for _, id := range ids {
				if counts[id] != 1 {
					t.Fatalf("referral %s has %d reminders; want exactly 1", id, counts[id])
				}
			}
			for _, c := range []rooms.Caller{w.coord, coord2} {
				ns, err := storeB.Notifications(context.Background(), c.User.ID, rooms.NotificationFilter{Limit: 500})
				if err != nil {
					t.Fatal(err)
				}
				got := 0
				for _, x := range ns {
					if x.Kind == rooms.NotifyReminder {
						got++
					}
				}
				if got != n {
					t.Fatalf("%s has %d reminder notifications; want %d, one per referral", c.User.Email, got, n)
				}
			}
		})
	}
}

type publishFunc func(rooms.Event)

func (f publishFunc) Publish(_ context.Context, e rooms.Event) { f(e) }

// reminderCount counts the reminder events of each referral, read through
// store.
func (w *world) reminderCount(t *testing.T, store rooms.Store) map[string]int {
	t.Helper()
	rs, err := store.Referrals(context.Background(), rooms.ReferralFilter{ReceivingOrganisation: "RET", Limit: 1000})
	if err != nil {
		t.Error(err)
		return nil
	}
	counts := map[string]int{}
	for _, r := range rs {
		es, err := store.Events(context.Background(), r.ID, 0, 0)
		if err != nil {
			t.Error(err)
			return nil
		}
		for _, e := range es {
			if e.Kind == rooms.EventReminder {
				counts[r.ID]++
			}
		}
	}
	return counts
}

func TestBoardFitsOneFrameWhateverTheNames(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		long := string([]rune(strings.Repeat("Ångström-Œuvre ", 14))[:199])
		u, err := w.svc.CreateUser(ctx, rooms.System, rooms.NewUser{
			Name: long, Email: "long@example.nhs.uk", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7100991",
			Organisation: "RJR", Roles: []rooms.Role{rooms.RoleClinician}, Status: rooms.UserActive, PasswordHash: "x",
		})
		if err != nil {
			t.Fatal(err)
		}
		c := rooms.Caller{User: u, ClientAddr: "127.0.0.1"}
		w.clock.Set(tuesday10)
		for i := range rooms.MaxBoardItems {
			n := newReferral(fmt.Sprintf("big%d", i), rooms.PriorityUrgent, true)
			n.Patient.Name = long
			if _, err := w.svc.CreateReferral(ctx, c, n); err != nil {
				t.Fatal(err)
			}
		}
		b, err := w.svc.Board(ctx, w.coord, "mscc")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(b)
		if len(raw) > rooms.MaxBoardBytes || !b.Truncated || len(b.Referrals) == 0 {
			t.Fatalf("board of %d items is %d bytes (truncated %v); want at most %d, truncated", len(b.Referrals), len(raw), b.Truncated, rooms.MaxBoardBytes)
		}
	})
}

func TestOnlyTheHostingOrganisationChangesTheNotice(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		ret := w.user(t, "admin-ret@example.nhs.uk", "RET", rooms.RoleAdmin)
		rbl := w.user(t, "admin-rbl@example.nhs.uk", "RBL", rooms.RoleAdmin)
		_, err := w.svc.PostNotice(ctx, rbl, rooms.NoticeInfo, "All fine")
		wantErr(t, err, rooms.CodeForbidden, "")
		if _, err := w.svc.PostNotice(ctx, ret, rooms.NoticeOutage, "Patient Pass is down; phone the MSCC coordinator"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, w.svc.ClearNotice(ctx, rbl), rooms.CodeForbidden, "")
		if n, err := w.svc.Notice(ctx, w.referrer); err != nil || n == nil || n.Level != rooms.NoticeOutage {
			t.Fatalf("notice after another organisation's attempts: %+v, %v", n, err)
		}
		if a := w.auditFor(t, rooms.AuditFilter{ActorID: rbl.User.ID, Outcome: rooms.OutcomeDenied}); len(a) != 2 {
			t.Fatalf("%d refusals audited; want 2", len(a))
		}
	})
}
