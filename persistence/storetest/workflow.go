package storetest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"patientpass/rooms"
)

// notificationID returns the fixed-width id of the i-th notification, so
// that ids sort in the order they were made.
func notificationID(i int) string { return fmt.Sprintf("n-%06d", i) }

// notification returns the i-th notification of user.
func notification(i int, user rooms.User) rooms.Notification {
	return rooms.Notification{
		ID:         notificationID(i),
		UserID:     user.ID,
		Kind:       "message",
		ReferralID: "r-1",
		Seq:        int64(i),
		At:         at(time.Duration(i) * time.Second),
		Title:      fmt.Sprintf("Message in ref %d", i),
	}
}

// addNotifications stores ns in a transaction of their own.
func addNotifications(t *testing.T, s rooms.Store, ns ...rooms.Notification) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.AddNotifications(ctx, ns) })
}

// markRead marks notifications read in a transaction of its own and returns
// how many were unread.
func markRead(t *testing.T, s rooms.Store, userID, upTo string, ids ...string) int {
	t.Helper()
	var n int
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		var err error
		n, err = tx.MarkNotificationsRead(ctx, userID, upTo, ids)
		return err
	})
	return n
}

// notificationIDs returns the ids of ns, in order.
func notificationIDs(ns []rooms.Notification) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

// checkNotifications compares notifications field by field, times at
// microseconds.
func checkNotifications(t *testing.T, what string, got, want []rooms.Notification) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %q, want %q", what, notificationIDs(got), notificationIDs(want))
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		g.At, w.At = normTime(g.At), normTime(w.At)
		if g != w {
			t.Errorf("%s: notification %d:\ngot  %+v\nwant %+v", what, i, g, w)
		}
	}
}

// listNotifications lists a user's notifications or fails the test.
func listNotifications(t *testing.T, r rooms.Reader, userID string, f rooms.NotificationFilter) []rooms.Notification {
	t.Helper()
	ns, err := r.Notifications(t.Context(), userID, f)
	if err != nil {
		t.Fatalf("list notifications of %s: %v", userID, err)
	}
	return ns
}

// wantUnread fails unless the user has n unread notifications.
func wantUnread(t *testing.T, r rooms.Reader, userID string, n int) {
	t.Helper()
	got, err := r.UnreadNotifications(t.Context(), userID)
	if err != nil || got != n {
		t.Errorf("unread notifications of %s: %d, %v; want %d", userID, got, err, n)
	}
}

var notificationTests = []subtest{
	{"round_trip_newest_first", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		first, second, third := notification(1, f.referrer), notification(2, f.referrer), notification(3, f.referrer)
		second.Kind, second.Seq, second.Title = "plan_edit", 7, "Plan edited \"imaging\" — ref ABC123"
		second.At = at(2*time.Second + 123*time.Microsecond)
		third.Kind, third.ReferralID, third.Seq = "reminder", "", 0
		theirs := notification(4, f.colleague)
		// Stored out of order, over two transactions, so neither insertion
		// order nor time can pass for the ids' order.
		addNotifications(t, s, second, theirs)
		addNotifications(t, s, third, first)

		checkNotifications(t, "referrer's", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{}),
			[]rooms.Notification{third, second, first})
		checkNotifications(t, "colleague's", listNotifications(t, s, f.colleague.ID, rooms.NotificationFilter{}),
			[]rooms.Notification{theirs})
		checkNotifications(t, "outsider's", listNotifications(t, s, f.outsider.ID, rooms.NotificationFilter{}), nil)
		wantUnread(t, s, f.referrer.ID, 3)
		wantUnread(t, s, f.outsider.ID, 0)
	}},
	{"unread_count_filter_and_limit", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		var all []rooms.Notification
		for i := 1; i <= 5; i++ {
			all = append(all, notification(i, f.referrer))
		}
		addNotifications(t, s, all...)
		if n := markRead(t, s, f.referrer.ID, "", notificationID(2)); n != 1 {
			t.Errorf("marking one read: %d were unread, want 1", n)
		}
		wantUnread(t, s, f.referrer.ID, 4)
		read := all[1]
		read.Read = true
		checkNotifications(t, "all", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{}),
			[]rooms.Notification{all[4], all[3], all[2], read, all[0]})
		checkNotifications(t, "unread", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{UnreadOnly: true}),
			[]rooms.Notification{all[4], all[3], all[2], all[0]})
		checkNotifications(t, "limit", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{Limit: 2}),
			[]rooms.Notification{all[4], all[3]})
		if n := markRead(t, s, f.referrer.ID, "", notificationID(5), notificationID(4)); n != 2 {
			t.Errorf("marking two read: %d were unread, want 2", n)
		}
		checkNotifications(t, "unread with a limit", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{UnreadOnly: true, Limit: 1}),
			[]rooms.Notification{all[2]})
	}},
	{"mark_read_up_to_and_by_ids", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		var ns []rooms.Notification
		for i := 1; i <= 6; i++ {
			ns = append(ns, notification(i, f.referrer))
		}
		ns = append(ns, notification(7, f.colleague), notification(8, f.colleague))
		addNotifications(t, s, ns...)

		for _, step := range []struct {
			what string
			user string
			upTo string
			ids  []string
			want int
		}{
			{"nothing named", f.referrer.ID, "", nil, 0},
			{"up to the third", f.referrer.ID, notificationID(3), nil, 3},
			{"up to the third again", f.referrer.ID, notificationID(3), nil, 0},
			{"up to an id between two", f.referrer.ID, notificationID(3) + "~", nil, 0},
			// Another's, one read already and one that does not exist are
			// ignored.
			{"by ids", f.referrer.ID, "", []string{notificationID(5), notificationID(7), notificationID(2), "n-missing"}, 1},
			{"up to and by ids", f.referrer.ID, notificationID(4), []string{notificationID(6)}, 2},
			{"all read", f.referrer.ID, notificationID(999), nil, 0},
			{"another's up to beyond the last", f.colleague.ID, notificationID(999), nil, 2},
		} {
			if got := markRead(t, s, step.user, step.upTo, step.ids...); got != step.want {
				t.Errorf("%s: %d were unread, want %d", step.what, got, step.want)
			}
		}
		wantUnread(t, s, f.referrer.ID, 0)
		wantUnread(t, s, f.colleague.ID, 0)
	}},
	{"mark_read_up_to_leaves_later_ones", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		var ns []rooms.Notification
		for i := 1; i <= 4; i++ {
			ns = append(ns, notification(i, f.referrer))
		}
		ns = append(ns, notification(5, f.colleague))
		addNotifications(t, s, ns...)
		if n := markRead(t, s, f.referrer.ID, notificationID(2)); n != 2 {
			t.Errorf("up to the second: %d were unread, want 2", n)
		}
		checkIDs(t, "unread after marking up to the second",
			notificationIDs(listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{UnreadOnly: true})),
			[]string{notificationID(4), notificationID(3)})
		// Another user's marking leaves these alone, whatever it names.
		if n := markRead(t, s, f.colleague.ID, notificationID(999), notificationID(3), notificationID(4)); n != 1 {
			t.Errorf("colleague marking: %d were unread, want 1 (their own)", n)
		}
		wantUnread(t, s, f.referrer.ID, 2)
	}},
	{"default_limit_and_cap", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		const stored = 520
		ns := make([]rooms.Notification, 0, stored)
		for i := 1; i <= stored; i++ {
			ns = append(ns, notification(i, f.referrer))
		}
		addNotifications(t, s, ns...)
		for _, c := range []struct {
			limit, want int
		}{{0, 50}, {10, 10}, {500, 500}, {1000, 500}} {
			got := listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{Limit: c.limit})
			if len(got) != c.want {
				t.Errorf("limit %d: %d notifications, want %d", c.limit, len(got), c.want)
				continue
			}
			if got[0].ID != notificationID(stored) || got[len(got)-1].ID != notificationID(stored-c.want+1) {
				t.Errorf("limit %d: from %s to %s, want the newest %d", c.limit, got[0].ID, got[len(got)-1].ID, c.want)
			}
		}
		wantUnread(t, s, f.referrer.ID, stored)
	}},
	{"duplicate_id_is_refused", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		addNotifications(t, s, notification(1, f.referrer))
		err := s.InTx(t.Context(), func(tx rooms.Tx) error {
			if err := tx.AddNotifications(t.Context(), []rooms.Notification{notification(2, f.referrer)}); err != nil {
				return err
			}
			// The same id for another user is taken all the same.
			return tx.AddNotifications(t.Context(), []rooms.Notification{notification(1, f.colleague)})
		})
		wantDuplicate(t, "add a notification with a taken id", err)
		checkIDs(t, "after the refused transaction", notificationIDs(listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{})),
			[]string{notificationID(1)})
		checkIDs(t, "colleague's after the refused transaction", notificationIDs(listNotifications(t, s, f.colleague.ID, rooms.NotificationFilter{})), nil)
	}},
	{"added_as_read_is_not_unread", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		read := notification(1, f.referrer)
		read.Read = true
		addNotifications(t, s, read, notification(2, f.referrer))
		checkNotifications(t, "notifications", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{}),
			[]rooms.Notification{notification(2, f.referrer), read})
		wantUnread(t, s, f.referrer.ID, 1)
		if n := markRead(t, s, f.referrer.ID, notificationID(2)); n != 1 {
			t.Errorf("marking up to the second: %d were unread, want 1", n)
		}
	}},
	{"concurrent_marks_count_each_once", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		const stored, readBefore, markers = 30, 5, 40
		var ns []rooms.Notification
		var all []string
		for i := 1; i <= stored; i++ {
			n := notification(i, f.referrer)
			n.Read = i%(stored/readBefore) == 0
			ns = append(ns, n)
			all = append(all, n.ID)
		}
		// Stored out of id order, so that a store which locks rows in the
		// order it finds them (by id through an index, or as stored) can
		// take them in different orders for different calls.
		shuffled := slices.Clone(ns)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		addNotifications(t, s, shuffled...)
		wantUnread(t, s, f.referrer.ID, stored-readBefore)
		reversed := slices.Clone(all)
		slices.Reverse(reversed)

		counts := make([]int, markers)
		errs := make([]error, markers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range markers {
			wg.Go(func() {
				<-start
				var upTo string
				var ids []string
				switch i % 4 {
				case 0:
					upTo = notificationID(stored)
				case 1:
					ids = all
				case 2:
					ids = reversed
				case 3:
					upTo, ids = notificationID(stored/2), reversed[:stored/2]
				}
				errs[i] = s.InTx(t.Context(), func(tx rooms.Tx) error {
					var err error
					counts[i], err = tx.MarkNotificationsRead(t.Context(), f.referrer.ID, upTo, ids)
					return err
				})
			})
		}
		close(start)
		wg.Wait()
		total := 0
		for i := range markers {
			if errs[i] != nil {
				t.Errorf("marker %d: %v", i, errs[i])
			}
			total += counts[i]
		}
		if total != stored-readBefore {
			t.Errorf("the concurrent marks counted %d notifications unread in all, want %d: one was counted twice or not at all", total, stored-readBefore)
		}
		wantUnread(t, s, f.referrer.ID, 0)
	}},
	{"read_markers_of_several_referrals", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		for _, id := range []string{"r-1", "r-2", "r-3"} {
			f.createReferral(t, f.referral(id, at(0)))
		}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			for _, m := range []struct {
				referral, user string
				seq            int64
			}{{"r-1", f.referrer.ID, 3}, {"r-2", f.referrer.ID, 5}, {"r-3", f.colleague.ID, 2}} {
				if err := tx.SetReadMarker(ctx, m.referral, m.user, m.seq); err != nil {
					return err
				}
			}
			return nil
		})
		got, err := s.ReadMarkers(t.Context(), f.referrer.ID, []string{"r-1", "r-2", "r-3", "r-missing"})
		if err != nil {
			t.Fatalf("read markers: %v", err)
		}
		if want := map[string]int64{"r-1": 3, "r-2": 5}; !maps.Equal(got, want) {
			t.Errorf("read markers %v, want %v", got, want)
		}
		got, err = s.ReadMarkers(t.Context(), f.referrer.ID, []string{"r-2"})
		if err != nil || !maps.Equal(got, map[string]int64{"r-2": 5}) {
			t.Errorf("read marker of one referral: %v, %v", got, err)
		}
		got, err = s.ReadMarkers(t.Context(), f.referrer.ID, nil)
		if err != nil || len(got) != 0 {
			t.Errorf("read markers of no referral: %v, %v; want none", got, err)
		}
	}},
}

// notice returns a system notice posted by u at when.
func notice(id, level string, u rooms.User, when time.Time) rooms.SystemNotice {
	return rooms.SystemNotice{ID: id, Level: level, Message: "Planned maintenance \"tonight\" — 22:00–23:00 <b>", PostedBy: rooms.AuthorOf(u), PostedAt: when}
}

// wantNotice fails unless want is the notice in force.
func wantNotice(t *testing.T, what string, r rooms.Reader, want rooms.SystemNotice) {
	t.Helper()
	got, err := r.SystemNotice(t.Context())
	if err != nil {
		t.Errorf("%s: get system notice: %v", what, err)
		return
	}
	got.PostedAt, want.PostedAt = normTime(got.PostedAt), normTime(want.PostedAt)
	if got != want {
		t.Errorf("%s: notice in force\ngot  %+v\nwant %+v", what, got, want)
	}
}

// putNotice puts n in force in a transaction of its own.
func putNotice(t *testing.T, s rooms.Store, n rooms.SystemNotice) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.PutSystemNotice(ctx, n) })
}

var systemNoticeTests = []subtest{
	{"none_in_force_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.SystemNotice(t.Context())
		wantNotFound(t, "get system notice when none was posted", err)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.ClearSystemNotice(t.Context(), "u-admin", at(0)) })
		wantNotFound(t, "clear system notice when none was posted", err)
	}},
	{"put_replace_clear", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		first := notice("sn-1", "info", f.specialist, at(0))
		putNotice(t, s, first)
		wantNotice(t, "after the first", s, first)

		second := notice("sn-2", "outage", f.colleague, at(time.Minute))
		second.Message = "Referrals cannot be submitted"
		putNotice(t, s, second)
		wantNotice(t, "after the second replaced it", s, second)

		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			return tx.ClearSystemNotice(ctx, f.specialist.ID, at(2*time.Minute))
		})
		_, err := s.SystemNotice(t.Context())
		wantNotFound(t, "get system notice after clearing", err)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.ClearSystemNotice(t.Context(), f.specialist.ID, at(3*time.Minute)) })
		wantNotFound(t, "clear system notice twice", err)

		third := notice("sn-3", "degraded", f.specialist, at(4*time.Minute))
		putNotice(t, s, third)
		wantNotice(t, "after a third once cleared", s, third)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error {
			return tx.PutSystemNotice(t.Context(), notice("sn-1", "info", f.specialist, at(5*time.Minute)))
		})
		wantDuplicate(t, "put a notice with a taken id", err)
		wantNotice(t, "after the refused put", s, third)
	}},
	{"rolled_back_changes_leave_the_notice_in_force", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		first := notice("sn-1", "info", f.specialist, at(0))
		putNotice(t, s, first)
		err := s.InTx(t.Context(), func(tx rooms.Tx) error {
			second := notice("sn-2", "degraded", f.specialist, at(time.Minute))
			if err := tx.PutSystemNotice(t.Context(), second); err != nil {
				return err
			}
			wantNotice(t, "through the transaction that put it", tx, second)
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("transaction returned %v, want the function's error", err)
		}
		wantNotice(t, "after a rolled-back put", s, first)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error {
			if err := tx.ClearSystemNotice(t.Context(), f.specialist.ID, at(time.Minute)); err != nil {
				return err
			}
			_, err := tx.SystemNotice(t.Context())
			wantNotFound(t, "through the transaction that cleared it", err)
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("transaction returned %v, want the function's error", err)
		}
		wantNotice(t, "after a rolled-back clear", s, first)
	}},
	{"concurrent_puts_leave_one_in_force", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		putNotice(t, s, notice("sn-0", "info", f.specialist, at(0)))
		const posters = 12
		errs := make([]error, posters)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range posters {
			wg.Go(func() {
				<-start
				n := notice(fmt.Sprintf("sn-%d", i+1), "degraded", f.specialist, at(time.Duration(i+1)*time.Second))
				errs[i] = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.PutSystemNotice(t.Context(), n) })
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("poster %d: %v", i, err)
			}
		}
		got, err := s.SystemNotice(t.Context())
		if err != nil || got.ID == "sn-0" {
			t.Errorf("notice in force after the concurrent puts: %+v, %v; want one of theirs", got.ID, err)
		}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			return tx.ClearSystemNotice(ctx, f.specialist.ID, at(time.Hour))
		})
		_, err = s.SystemNotice(t.Context())
		wantNotFound(t, "after clearing the one in force, none is left", err)
	}},
}

// wantOPEL fails unless want is the organisation's level.
func wantOPEL(t *testing.T, what string, r rooms.Reader, want rooms.OPEL) {
	t.Helper()
	got, err := r.OPEL(t.Context(), want.Organisation)
	if err != nil {
		t.Errorf("%s: get OPEL: %v", what, err)
		return
	}
	got.SetAt, want.SetAt = normTime(got.SetAt), normTime(want.SetAt)
	if got != want {
		t.Errorf("%s: OPEL\ngot  %+v\nwant %+v", what, got, want)
	}
}

var opelTests = []subtest{
	{"never_set_is_not_found", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		_, err := s.OPEL(t.Context(), "RET")
		wantNotFound(t, "get OPEL never set", err)
	}},
	{"put_then_replace", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		first := rooms.OPEL{Organisation: "RET", Level: 3, Note: "Two wards closed — norovirus", SetAt: at(0), SetBy: rooms.AuthorOf(f.specialist)}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.PutOPEL(ctx, first); err != nil {
				return err
			}
			wantOPEL(t, "through the transaction that set it", tx, first)
			return nil
		})
		wantOPEL(t, "after setting it", s, first)

		second := rooms.OPEL{Organisation: "RET", Level: 4, SetAt: at(time.Hour), SetBy: rooms.AuthorOf(f.colleague)}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.PutOPEL(ctx, second) })
		wantOPEL(t, "after replacing it", s, second)

		_, err := s.OPEL(t.Context(), "REN")
		wantNotFound(t, "get OPEL of an organisation that never set it", err)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error {
			if err := tx.PutOPEL(t.Context(), rooms.OPEL{Organisation: "RET", Level: 1, SetAt: at(2 * time.Hour), SetBy: rooms.AuthorOf(f.specialist)}); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("transaction returned %v, want the function's error", err)
		}
		wantOPEL(t, "after a rolled-back put", s, second)
	}},
}

// display returns a display of organisation made at when.
func display(id, organisation string, when time.Time) rooms.Display {
	return rooms.Display{ID: id, Organisation: organisation, Name: "Ward 4 screen " + id, TokenHash: "hash-" + id,
		CreatedBy: "u-specialist", CreatedAt: when}
}

func normDisplay(d rooms.Display) rooms.Display {
	d.CreatedAt = normTime(d.CreatedAt)
	d.RevokedAt = normTimePtr(d.RevokedAt)
	return d
}

// checkDisplays compares displays field by field, the token hash included.
func checkDisplays(t *testing.T, what string, got, want []rooms.Display) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d displays, want %d: %+v", what, len(got), len(want), got)
		return
	}
	for i := range got {
		g, w := normDisplay(got[i]), normDisplay(want[i])
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: display %d:\ngot  %+v\nwant %+v", what, i, g, w)
		}
	}
}

// createDisplays stores ds in a transaction of their own.
func createDisplays(t *testing.T, s rooms.Store, ds ...rooms.Display) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		for _, d := range ds {
			if err := tx.CreateDisplay(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
}

var displayTests = []subtest{
	{"create_look_up_list_revoke", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		d1, d2, d3 := display("d-1", "RET", at(0)), display("d-2", "RET", at(time.Minute)), display("d-3", "REN", at(2*time.Minute))
		createDisplays(t, s, d2, d3, d1)

		got, err := s.Display(t.Context(), "d-1")
		if err != nil {
			t.Fatalf("get display: %v", err)
		}
		checkDisplays(t, "display by id", []rooms.Display{got}, []rooms.Display{d1})
		got, err = s.DisplayByTokenHash(t.Context(), "hash-d-2")
		if err != nil {
			t.Fatalf("get display by token: %v", err)
		}
		checkDisplays(t, "display by token", []rooms.Display{got}, []rooms.Display{d2})
		list, err := s.Displays(t.Context(), "RET")
		if err != nil {
			t.Fatalf("list displays: %v", err)
		}
		checkDisplays(t, "displays of RET, newest first", list, []rooms.Display{d2, d1})
		list, err = s.Displays(t.Context(), "RBL")
		if err != nil || len(list) != 0 {
			t.Errorf("displays of an organisation with none: %+v, %v", list, err)
		}

		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.RevokeDisplay(ctx, "d-1", at(5*time.Minute)) })
		d1.RevokedAt = ptr(at(5 * time.Minute))
		got, err = s.Display(t.Context(), "d-1")
		if err != nil {
			t.Fatalf("get revoked display: %v", err)
		}
		checkDisplays(t, "revoked display", []rooms.Display{got}, []rooms.Display{d1})
		got, err = s.DisplayByTokenHash(t.Context(), "hash-d-1")
		if err != nil {
			t.Fatalf("get revoked display by token: %v", err)
		}
		checkDisplays(t, "revoked display by token", []rooms.Display{got}, []rooms.Display{d1})
		list, err = s.Displays(t.Context(), "RET")
		if err != nil {
			t.Fatalf("list displays: %v", err)
		}
		checkDisplays(t, "displays of RET with one revoked", list, []rooms.Display{d2, d1})

		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.RevokeDisplay(t.Context(), "d-1", at(6*time.Minute)) })
		wantNotFound(t, "revoke a display twice", err)
		got, err = s.Display(t.Context(), "d-1")
		if err != nil || !sameTimePtr(got.RevokedAt, d1.RevokedAt) {
			t.Errorf("display revoked twice: revoked at %v (%v), want the first time %v", got.RevokedAt, err, d1.RevokedAt)
		}
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.RevokeDisplay(t.Context(), "d-missing", at(6*time.Minute)) })
		wantNotFound(t, "revoke a missing display", err)
	}},
	{"duplicate_id_or_token_is_refused", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		createDisplays(t, s, display("d-1", "RET", at(0)))
		sameID := display("d-1", "RET", at(time.Minute))
		sameID.TokenHash = "hash-other"
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateDisplay(t.Context(), sameID) })
		wantDuplicate(t, "create a display with a taken id", err)
		sameToken := display("d-2", "REN", at(time.Minute))
		sameToken.TokenHash = "hash-d-1"
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateDisplay(t.Context(), sameToken) })
		wantDuplicate(t, "create a display with a taken token", err)
		list, err := s.Displays(t.Context(), "RET")
		if err != nil || len(list) != 1 {
			t.Errorf("displays after the refused creations: %+v, %v; want the first only", list, err)
		}
	}},
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.Display(t.Context(), "d-missing")
		wantNotFound(t, "get missing display", err)
		_, err = s.DisplayByTokenHash(t.Context(), "hash-missing")
		wantNotFound(t, "get display by a token nobody holds", err)
	}},
}

var reminderTests = []subtest{
	{"due_reminders_earliest_first", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		due := map[string]*time.Time{
			"r-a": ptr(at(10 * time.Minute)),
			"r-c": ptr(at(5 * time.Minute)),
			"r-b": ptr(at(5 * time.Minute)), // the same time as r-c: by id
			"r-d": ptr(at(time.Hour)),
			"r-e": nil,
		}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			for _, id := range slices.Sorted(maps.Keys(due)) {
				r := f.referral(id, at(0))
				r.Status, r.ReminderAt = rooms.StatusSubmitted, due[id]
				if err := tx.CreateReferral(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
		for _, c := range []struct {
			name  string
			now   time.Time
			limit int
			want  []string
		}{
			{"all_due", at(30 * time.Minute), 0, []string{"r-b", "r-c", "r-a"}},
			{"limit", at(30 * time.Minute), 2, []string{"r-b", "r-c"}},
			{"due_exactly_now", at(5 * time.Minute), 10, []string{"r-b", "r-c"}},
			{"a_microsecond_before", at(5*time.Minute - time.Microsecond), 10, nil},
			{"every_one_set", at(2 * time.Hour), 0, []string{"r-b", "r-c", "r-a", "r-d"}},
		} {
			got, err := s.DueReminders(t.Context(), c.now, c.limit)
			if err != nil {
				t.Fatalf("%s: due reminders: %v", c.name, err)
			}
			checkIDs(t, c.name, got, c.want)
		}

		// A reminder cleared is no longer due; one brought forward is.
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			for id, when := range map[string]*time.Time{"r-b": nil, "r-d": ptr(at(time.Minute))} {
				r, err := tx.LockReferral(ctx, id)
				if err != nil {
					return err
				}
				r.ReminderAt = when
				if err := tx.UpdateReferral(ctx, r); err != nil {
					return err
				}
			}
			got, err := tx.DueReminders(ctx, at(30*time.Minute), 0)
			if err != nil {
				return err
			}
			checkIDs(t, "through the transaction that moved them", got, []string{"r-d", "r-c", "r-a"})
			return nil
		})
		got, err := s.DueReminders(t.Context(), at(30*time.Minute), 0)
		if err != nil {
			t.Fatalf("due reminders: %v", err)
		}
		checkIDs(t, "after moving them", got, []string{"r-d", "r-c", "r-a"})
	}},
}

var workflowTransactionTests = []subtest{
	{"reads_see_the_transaction_and_a_rollback_undoes_it", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		f.createReferral(t, f.referral("r-1", at(0)))
		ctx := t.Context()
		err := s.InTx(ctx, func(tx rooms.Tx) error {
			r, err := tx.LockReferral(ctx, "r-1")
			if err != nil {
				return err
			}
			r.ReminderAt = ptr(at(time.Minute))
			for _, step := range []func() error{
				func() error { return tx.UpdateReferral(ctx, r) },
				func() error {
					return tx.AddNotifications(ctx, []rooms.Notification{notification(1, f.referrer), notification(2, f.referrer)})
				},
				func() error { return tx.SetReadMarker(ctx, "r-1", f.referrer.ID, 4) },
				func() error { return tx.PutSystemNotice(ctx, notice("sn-1", "info", f.specialist, at(0))) },
				func() error {
					return tx.PutOPEL(ctx, rooms.OPEL{Organisation: "RET", Level: 2, SetAt: at(0), SetBy: rooms.AuthorOf(f.specialist)})
				},
				func() error { return tx.CreateDisplay(ctx, display("d-1", "RET", at(0))) },
			} {
				if err := step(); err != nil {
					return err
				}
			}
			if n, err := tx.MarkNotificationsRead(ctx, f.referrer.ID, notificationID(1), nil); err != nil || n != 1 {
				t.Errorf("mark read through the transaction: %d, %v; want 1", n, err)
			}
			checks := []struct {
				what string
				err  func() error
			}{
				{"notifications", func() error { return wantLen(tx.Notifications(ctx, f.referrer.ID, rooms.NotificationFilter{}))(2) }},
				{"unread notifications", func() error {
					if n, err := tx.UnreadNotifications(ctx, f.referrer.ID); err != nil || n != 1 {
						return fmt.Errorf("%d, %v; want 1", n, err)
					}
					return nil
				}},
				{"read markers", func() error {
					if m, err := tx.ReadMarkers(ctx, f.referrer.ID, []string{"r-1"}); err != nil || m["r-1"] != 4 {
						return fmt.Errorf("%v, %v; want r-1 at 4", m, err)
					}
					return nil
				}},
				{"system notice", func() error { _, err := tx.SystemNotice(ctx); return err }},
				{"OPEL", func() error { _, err := tx.OPEL(ctx, "RET"); return err }},
				{"display", func() error { _, err := tx.Display(ctx, "d-1"); return err }},
				{"display by token", func() error { _, err := tx.DisplayByTokenHash(ctx, "hash-d-1"); return err }},
				{"displays", func() error { return wantLen(tx.Displays(ctx, "RET"))(1) }},
				{"due reminders", func() error { return wantLen(tx.DueReminders(ctx, at(time.Hour), 0))(1) }},
			}
			for _, c := range checks {
				if err := c.err(); err != nil {
					t.Errorf("%s through a transaction: %v", c.what, err)
				}
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("InTx returned %v, want the function's error as it is", err)
		}

		checkNotifications(t, "notifications after rollback", listNotifications(t, s, f.referrer.ID, rooms.NotificationFilter{}), nil)
		wantUnread(t, s, f.referrer.ID, 0)
		if m, err := s.ReadMarkers(ctx, f.referrer.ID, []string{"r-1"}); err != nil || len(m) != 0 {
			t.Errorf("read markers after rollback: %v, %v", m, err)
		}
		_, err = s.SystemNotice(ctx)
		wantNotFound(t, "system notice after rollback", err)
		_, err = s.OPEL(ctx, "RET")
		wantNotFound(t, "OPEL after rollback", err)
		_, err = s.Display(ctx, "d-1")
		wantNotFound(t, "display after rollback", err)
		if due, err := s.DueReminders(ctx, at(time.Hour), 0); err != nil || len(due) != 0 {
			t.Errorf("due reminders after rollback: %v, %v", due, err)
		}
	}},
}

// holdLock calls HoldSchedulerLock and fails the test on an error.
func holdLock(t *testing.T, what string, s rooms.Store) bool {
	t.Helper()
	held, err := s.HoldSchedulerLock(t.Context())
	if err != nil {
		t.Fatalf("%s: hold scheduler lock: %v", what, err)
	}
	return held
}

// releaseLock calls ReleaseSchedulerLock and fails the test on an error.
func releaseLock(t *testing.T, what string, s rooms.Store) {
	t.Helper()
	if err := s.ReleaseSchedulerLock(t.Context()); err != nil {
		t.Fatalf("%s: release scheduler lock: %v", what, err)
	}
}

var schedulerLockTests = []subtest{
	{"held_released_and_taken_again", func(t *testing.T, s rooms.Store) {
		releaseLock(t, "release before holding", s)
		for i := range 3 {
			if !holdLock(t, fmt.Sprintf("hold %d", i+1), s) {
				t.Fatalf("hold %d: the only store did not get the lock", i+1)
			}
		}
		releaseLock(t, "release", s)
		releaseLock(t, "release again", s)
		if !holdLock(t, "hold after releasing", s) {
			t.Fatalf("the lock could not be taken again after it was released")
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if held, _ := s.HoldSchedulerLock(t.Context()); held {
			t.Errorf("a closed store holds the scheduler lock")
		}
	}},
}

// schedulerLockShared checks that of two stores on one database only one
// holds the lock, until it releases it or closes.
func schedulerLockShared(t *testing.T, a, b rooms.Store) {
	if !holdLock(t, "a takes the free lock", a) {
		t.Fatalf("a did not get the free lock")
	}
	if holdLock(t, "b tries while a holds it", b) {
		t.Fatalf("b got the lock while a held it")
	}
	if !holdLock(t, "a confirms it", a) {
		t.Fatalf("a lost the lock nobody else took")
	}
	releaseLock(t, "b, which does not hold it, releases", b)
	if holdLock(t, "b tries after its own release", b) {
		t.Fatalf("b's release freed a's lock")
	}
	releaseLock(t, "a releases", a)
	if !holdLock(t, "b tries after a released", b) {
		t.Fatalf("b did not get the lock a released")
	}
	if holdLock(t, "a tries while b holds it", a) {
		t.Fatalf("a got the lock back while b held it")
	}
	// A node that stops, cleanly or not, gives the lock up with its store.
	if err := b.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	if !holdLock(t, "a tries after b closed", a) {
		t.Fatalf("a did not get the lock of the closed b")
	}
}

// schedulerLockConcurrent races HoldSchedulerLock from many goroutines on
// two stores: exactly one store ever holds the lock.
func schedulerLockConcurrent(t *testing.T, a, b rooms.Store) {
	const callers, tries = 40, 5
	stores := [2]rooms.Store{a, b}
	var (
		mu      sync.Mutex
		holders [2]int // guarded by mu
	)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			for range tries {
				held, err := stores[i%2].HoldSchedulerLock(t.Context())
				if err != nil {
					errs[i] = err
					return
				}
				if held {
					mu.Lock()
					holders[i%2]++
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	switch {
	case holders[0] > 0 && holders[1] > 0:
		t.Fatalf("both stores held the lock (a %d times, b %d times)", holders[0], holders[1])
	case holders[0] == 0 && holders[1] == 0:
		t.Fatalf("neither store got the free lock")
	}
	// The holder kept it: every one of its callers' tries said so.
	if n := max(holders[0], holders[1]); n != callers/2*tries {
		t.Errorf("the holder confirmed the lock %d times of %d", n, callers/2*tries)
	}
}
