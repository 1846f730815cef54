package hub_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"patientpass/rooms"
)

// The workflow's pages in a real browser: the triage board, the wallboard
// on a display, admin and the notification bell, each followed live while
// other people act through the API.

// withCheckDigit completes nine digits into a valid NHS number, or returns
// "" when those nine have none (check digit 10).
func withCheckDigit(nine string) string {
	sum := 0
	for i, d := range nine {
		sum += int(d-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 {
		return ""
	}
	return nine + strconv.Itoa(check)
}

// patients are the seeded referrals' patients, so screenshots look real.
var patients = []struct{ name, dob, sex string }{
	{"Margaret Evans", "1949-03-14", "female"},
	{"John Okafor", "1958-07-02", "male"},
	{"Priya Shah", "1971-11-23", "female"},
	{"David Hughes", "1944-01-30", "male"},
	{"Siân Roberts", "1962-05-09", "female"},
	{"Tomasz Nowak", "1955-09-17", "male"},
	{"Aled Jones", "1939-12-04", "male"},
}

// referralFor creates a submitted referral of the given priority for the
// i-th seeded patient, as the browser c.
func (c *client) referralFor(i int, priority string) string {
	c.e.t.Helper()
	p := patients[i%len(patients)]
	nhs := ""
	for n := 0; nhs == ""; n++ {
		nhs = withCheckDigit(fmt.Sprintf("94%07d", 3476500+i*37+n))
	}
	body := referralBody(rooms.NewID())
	body["priority"] = priority
	body["patient"] = map[string]any{"nhs_number": nhs, "name": p.name, "date_of_birth": p.dob, "sex": p.sex}
	res := c.do("POST", "/api/referrals", body)
	if res.status != 201 {
		c.e.t.Fatalf("create referral = %d %s", res.status, res.raw)
	}
	return res.body["id"].(string)
}

// move makes a transition through the API.
func (c *client) move(id, to string, extra map[string]any) {
	c.e.t.Helper()
	body := map[string]any{"ref": rooms.NewID(), "to": to}
	for k, v := range extra {
		body[k] = v
	}
	if res := c.do("POST", "/api/referrals/"+id+"/transitions", body); res.status != 200 {
		c.e.t.Fatalf("move %s to %s = %d %s", id, to, res.status, res.raw)
	}
}

// loginTOTP logs an admin in through the login page with a fresh code.
func (b *browser) loginTOTP(e *env, email, secret string) {
	b.t.Helper()
	e.clock.Advance(30 * time.Second) // the enrolment spent the current code
	b.do(
		chromedp.Navigate(e.base+"/login"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), testPassword+"\n"),
		chromedp.WaitVisible(chromedp.ID("totp")),
		chromedp.SendKeys(chromedp.ID("totp"), e.code(secret)+"\n"),
		chromedp.WaitVisible(chromedp.CSS("header.top")),
	)
}

// open loads path afresh once logged in. The shell's live connection is
// stopped for good by the 401 of the login page's "who is signed in?", so
// a page that must be live is loaded after logging in. The login's own
// 401s (no session yet; a password without its code) are expected; any
// other error so far fails the test.
func (b *browser) open(base, path string) {
	b.t.Helper()
	b.noConsoleErrors(loggedOut)
	b.do(chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("header.top")))
}

// js quotes s as a JavaScript string literal.
func js(s string) string { return strconv.Quote(s) }

// seedBoard gives the receiving team a morning's queue: one emergency
// overdue, one due soon, one claimed, others waiting. The clock moves in
// steps shorter than the sessions' idle timeout, so the referrer stays
// logged in; the receiving team logs in after.
func seedBoard(e *env, referrer *client) (claimable string) {
	e.t.Helper()
	referrer.referralFor(0, "emergency") // 09:00, due 10:00: overdue by 10:10
	referrer.referralFor(1, "routine")
	e.clock.Advance(25 * time.Minute)
	referrer.referralFor(2, "emergency") // 09:25, due 10:25: due soon by 10:10
	claimable = referrer.referralFor(3, "urgent")
	e.clock.Advance(25 * time.Minute)
	referrer.referralFor(4, "urgent")
	e.clock.Advance(20 * time.Minute) // 10:10
	return claimable
}

func TestBrowserBoardIsLive(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
	claimable := seedBoard(e, referrer)
	coord := e.user("RET", rooms.UserActive, rooms.RoleCoordinator)
	spec := e.login(e.user("RET", rooms.UserActive, rooms.RoleSpecialist).Email)

	b := newBrowser(t, 1400)
	b.login(e.base, coord.Email)
	b.open(e.base, "/board")
	b.waitJS("the seeded queue", `document.querySelectorAll('table.board tbody tr').length === 5`)
	if n := eval[int](b, `document.querySelectorAll('table.board tr.overdue').length`); n != 1 {
		t.Fatalf("%d overdue rows; want the emergency submitted at 09:00", n)
	}
	if n := eval[int](b, `document.querySelectorAll('table.board tr.due-soon').length`); n != 1 {
		t.Fatalf("%d rows due soon; want the emergency submitted at 09:25", n)
	}
	first := eval[string](b, `document.querySelector('table.board tbody tr .patient').textContent`)
	if first != patients[0].name {
		t.Fatalf("first row is %q; want the earliest deadline, %s", first, patients[0].name)
	}
	if nhs := b.text(`table.board tbody tr .nhs`); !strings.Contains(nhs, " ") || len(strings.ReplaceAll(strings.TrimPrefix(nhs, "NHS "), " ", "")) != 10 {
		t.Fatalf("NHS number shown as %q; want 3-3-4", nhs)
	}

	// Claiming from the board moves the referral to in triage and gives it
	// to the coordinator.
	row := `document.querySelector('tr[data-id=` + js(claimable) + `]')`
	b.do(chromedp.Click(chromedp.CSS(`tr[data-id="` + claimable + `"] .board-actions button.primary`)))
	b.waitJS("the claim", row+`.dataset.status === 'in_triage' && `+row+`.querySelector('.assignee').textContent === `+js(coord.Name))

	// A new referral appears, then follows the specialist's moves.
	id := referrer.referralFor(5, "emergency")
	row = `document.querySelector('tr[data-id=` + js(id) + `]')`
	b.waitJS("the new referral on the board", row)
	if got := eval[string](b, row+`.querySelector('.status').textContent`); got != "submitted" {
		t.Fatalf("new referral's status shows %q", got)
	}
	if got := eval[string](b, row+`.querySelector('.unread').textContent`); got == "" {
		t.Fatalf("a new referral shows nothing unread")
	}
	spec.move(id, "in_triage", nil)
	b.waitJS("the status changing live", row+` && `+row+`.querySelector('.status').textContent === 'in triage'`)
	b.screenshot("board")
	spec.move(id, "declined", map[string]any{"reason": "Not MSCC: imaging shows degenerative disease only"})
	b.waitJS("the declined referral leaving the board", `!`+row)
	if n := eval[int](b, `document.querySelectorAll('table.board tbody tr').length`); n != 5 {
		t.Fatalf("%d rows after the decline; want 5", n)
	}
	b.noConsoleErrors()
}

func TestBrowserWallboardIsLive(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	// A morning's work: seven referrals, some triaged 25 minutes after
	// submission, the first emergency past its deadline by 10:05.
	referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
	spec := e.login(e.user("RET", rooms.UserActive, rooms.RoleSpecialist).Email)
	var ids []string
	for i, p := range []string{"emergency", "urgent", "routine", "urgent", "urgent", "routine"} {
		ids = append(ids, referrer.referralFor(i, p))
	}
	e.clock.Advance(25 * time.Minute) // 09:25
	for _, id := range []string{ids[1], ids[3], ids[4], ids[5]} {
		spec.move(id, "in_triage", nil)
	}
	spec.move(ids[3], "accepted", map[string]any{"outcome": map[string]any{"bed_type": "neurosurgical"}})
	spec.move(ids[4], "managed_remotely", map[string]any{"reason": "Stable; radiotherapy locally", "outcome": map[string]any{"advice": "Dexamethasone 16 mg; flat bed rest"}})
	spec.move(ids[5], "more_info_needed", map[string]any{"reason": "Please send the MRI whole spine report"})
	ids = append(ids, referrer.referralFor(6, "emergency"))
	e.clock.Advance(25 * time.Minute) // 09:50
	spec.move(ids[6], "in_triage", nil)
	e.clock.Advance(15 * time.Minute) // 10:05
	_, admin, _ := e.enrolledAdmin("RET")

	res := admin.do("POST", "/api/admin/displays", map[string]any{"name": "Bed management office"})
	if res.status != 201 {
		t.Fatalf("create display = %d %s", res.status, res.raw)
	}
	displayID, url := res.body["id"].(string), res.body["url"].(string)

	b := newBrowser(t, 1600)
	b.do(chromedp.Navigate(e.base + url))
	b.waitJS("the wallboard", `location.pathname === '/wallboard' && document.querySelector('.wb-tiles')`)
	spinal := `document.querySelector('[data-bed="spinal"] strong').textContent`
	if got := eval[string](b, spinal); got != "0" {
		t.Fatalf("awaiting a spinal bed shows %q; want 0", got)
	}
	if n := eval[int](b, `document.querySelectorAll('input, select, textarea, button').length`); n != 0 {
		t.Fatalf("the wallboard has %d inputs; want none", n)
	}
	page := eval[string](b, `document.body.innerText`)
	for _, p := range patients[:4] {
		if strings.Contains(page, p.name) {
			t.Fatalf("the wallboard shows the name %q", p.name)
		}
	}

	// An acceptance for a spinal bed and the OPEL level show live.
	spec.move(ids[1], "accepted", map[string]any{"outcome": map[string]any{"bed_type": "spinal"}})
	b.waitJS("awaiting a spinal bed: 1", spinal+` === '1'`)
	if res := admin.do("PUT", "/api/wallboard/opel", map[string]any{"level": 3, "note": "ED full, two spinal beds closed"}); res.status != 200 {
		t.Fatalf("set OPEL = %d %s", res.status, res.raw)
	}
	b.waitJS("OPEL 3", `document.querySelector('.wb-opel.opel-3 .wb-value')?.textContent === '3'`)
	if res := admin.do("POST", "/api/admin/system-status", map[string]any{"level": "degraded", "message": "Imaging links are slow this morning"}); res.status != 201 {
		t.Fatalf("post notice = %d %s", res.status, res.raw)
	}
	b.waitJS("the system notice", `document.querySelector('.wb-notice')?.textContent.includes('Imaging links are slow')`)
	b.screenshot("wallboard")

	if res := admin.do("DELETE", "/api/admin/displays/"+displayID, nil); res.status != 200 {
		t.Fatalf("revoke = %d %s", res.status, res.raw)
	}
	b.waitJS("the display switched off", `document.body.innerText.includes('This display has been switched off by an administrator')`)
	// A display is refused /api/me (the shell asks, and so does the page).
	b.noConsoleErrors("403 (Forbidden) " + e.base + "/api/me")
}

func TestBrowserAdminApprovesAndPostsNotice(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	adminUser, _, secret := e.enrolledAdmin("RET")
	pending := e.user("RET", rooms.UserPending, rooms.RoleSpecialist)
	clinician := e.user("RJR", rooms.UserActive, rooms.RoleClinician)

	other := newBrowser(t, 1280)
	other.login(e.base, clinician.Email)
	other.open(e.base, "/referrals")

	b := newBrowser(t, 1280)
	b.loginTOTP(e, adminUser.Email, secret)
	b.open(e.base, "/admin")
	approve := `tr[data-id="` + pending.ID + `"] button[data-action="approve"]`
	b.do(chromedp.WaitVisible(chromedp.CSS(approve)), chromedp.Click(chromedp.CSS(approve)))
	b.waitJS("the approval", `document.querySelector('#accounts .done')?.textContent === `+js(pending.Name+" approved."))
	if res := e.client().loginWith(pending.Email, testPassword, ""); res.status != 200 {
		t.Fatalf("the approved user cannot log in: %d %s", res.status, res.raw)
	}

	const message = "Patient Pass will be unavailable 22:00–22:15 tonight for maintenance"
	b.waitJS("the notice form", `document.getElementById('notice-level')`)
	eval[bool](b, `(() => { const s = document.getElementById('notice-level'); s.value = 'degraded'; s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()`)
	b.do(
		chromedp.SendKeys(chromedp.ID("notice-message"), message),
		chromedp.Click(chromedp.CSS(`#notice button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".current-notice")),
	)
	other.waitJS("the banner on the clinician's page", `document.querySelector('.notice.notice-degraded')?.textContent.includes(`+js(message)+`)`)
	b.screenshot("admin")

	// The audit trail's CSV is fetched with Accept: text/csv and saved
	// from a Blob.
	downloads := t.TempDir()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	b.do(chromedp.Click(chromedp.CSS("#audit button.download")))
	var csv []byte
	for deadline := time.Now().Add(waitFor); len(csv) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no CSV was downloaded")
		}
		files, _ := filepath.Glob(filepath.Join(downloads, "audit-*.csv"))
		if len(files) == 1 {
			csv, _ = os.ReadFile(files[0])
		}
	}
	if !strings.HasPrefix(string(csv), "id,at,actor_id,") || !strings.Contains(string(csv), "user.approve") {
		t.Fatalf("downloaded CSV:\n%.300s", csv)
	}
	b.noConsoleErrors()
	other.noConsoleErrors()
}

func TestBrowserNotificationsBell(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	coord := e.user("RET", rooms.UserActive, rooms.RoleCoordinator)
	referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)

	b := newBrowser(t, 1280)
	b.login(e.base, coord.Email)
	b.open(e.base, "/referrals")
	bell := `document.querySelector('a.bell').getAttribute('aria-label')`
	if got := eval[string](b, bell); got != "Notifications, 0 unread" {
		t.Fatalf("bell says %q", got)
	}
	referrer.referralFor(0, "urgent")
	b.waitJS("the bell counting the submission", bell+` === 'Notifications, 1 unread'`)
	referrer.referralFor(1, "emergency")
	b.waitJS("the bell counting the second", bell+` === 'Notifications, 2 unread'`)

	// The page lists them newest first, linked to their referrals; marking
	// one read brings the count down everywhere.
	b.do(chromedp.Click(chromedp.CSS("a.bell")))
	b.waitJS("the list", `document.querySelectorAll('.notification-list li.unread').length === 2`)
	if href := eval[string](b, `document.querySelector('.notification-list li a').getAttribute('href')`); !strings.HasPrefix(href, "/referrals/") {
		t.Fatalf("notification links to %q", href)
	}
	b.do(chromedp.Click(chromedp.CSS(".notification-list li.unread button")))
	b.waitJS("one marked read", bell+` === 'Notifications, 1 unread' && document.querySelectorAll('.notification-list li.unread').length === 1`)
	referrer.referralFor(2, "routine")
	b.waitJS("a new one arriving on the open page", `document.querySelectorAll('.notification-list li.unread').length === 2 && `+bell+` === 'Notifications, 2 unread'`)
	b.noConsoleErrors()
}

func TestBrowserAdminSetsUpTOTPFromTheAccountPage(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	admin := e.user("RET", rooms.UserActive, rooms.RoleAdmin)

	b := newBrowser(t, 1280)
	b.login(e.base, admin.Email)
	b.waitJS("the shell sending the admin to set up TOTP", `location.pathname === '/account' && document.querySelector('.error-summary')?.textContent.includes('two-factor')`)
	b.do(chromedp.Click(chromedp.CSS(".totp button.primary")), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	if src := eval[string](b, `document.querySelector('img.qr').getAttribute('src')`); !strings.HasPrefix(src, "data:image/gif;base64,") {
		t.Fatalf("QR code src %.40q; want a data: image", src)
	}
	if w := eval[int](b, `document.querySelector('img.qr').naturalWidth`); w < 100 {
		t.Fatalf("QR code is %d px wide", w)
	}
	secret := strings.ReplaceAll(b.text(".totp .secret"), " ", "")
	b.do(chromedp.SendKeys(chromedp.ID("totp-code"), e.code(secret)+"\n"))
	b.waitJS("the recovery codes", `document.querySelectorAll('.recovery-codes li').length === 10`)
	// TOTP is on: the password alone no longer logs in.
	if res := e.client().loginWith(admin.Email, testPassword, ""); res.status != 401 {
		t.Fatalf("password-only login after enrolment = %d %s", res.status, res.raw)
	} else if _, field := res.errorField(); field != "totp" {
		t.Fatalf("password-only login refused at %q; want totp", field)
	}
	// Before enrolment the shell's socket is refused (403: admins need
	// TOTP first); the login page's own 401 is expected too.
	b.noConsoleErrors(loggedOut, "WebSocket connection to 'ws://")
}

// TestBrowserWallboardSurvivesARestart: a wall screen shows the wallboard
// through a display link; its node stops and a new one starts on the same
// store behind the same address; the screen shows "reconnecting…", then
// the change made meanwhile, by itself.
func TestBrowserWallboardSurvivesARestart(t *testing.T) {
	proxy := newRoomProxy(t)
	store := openEmbedded(t)
	e := newEnvWith(t, store, func(c *envConfig) { c.PublicURL = proxy.url() })
	proxy.setTarget(e.srv.Listener.Addr().String())
	referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
	specialist := e.user("RET", rooms.UserActive, rooms.RoleSpecialist)
	id := referrer.newReferral()
	_, admin, _ := e.enrolledAdmin("RET")
	res := admin.do("POST", "/api/admin/displays", map[string]any{"name": "Bed management office"})
	if res.status != 201 {
		t.Fatalf("create display = %d %s", res.status, res.raw)
	}
	b := newBrowser(t, 1600)
	b.do(chromedp.Navigate(proxy.url() + res.body["url"].(string)))
	b.waitJS("the wallboard", `location.pathname === '/wallboard' && document.querySelector('.wb-tiles')`)
	spinal := `document.querySelector('[data-bed="spinal"] strong').textContent`
	b.waitJS("awaiting a spinal bed: 0", spinal+` === '0'`)
	eval[bool](b, `(window.__marker = 1) === 1`)

	proxy.cut()
	e.srv.Close()
	b.waitJS(`the screen to say "reconnecting…"`, `document.body.innerText.includes('reconnecting')`)
	again := newEnvWith(t, store, func(c *envConfig) { c.PublicURL = proxy.url() })
	by := rooms.Caller{User: specialist, ClientAddr: "127.0.0.1"}
	for _, m := range []rooms.Transition{{Ref: "t1", ReferralID: id, To: rooms.StatusInTriage},
		{Ref: "t2", ReferralID: id, To: rooms.StatusAccepted, Outcome: map[string]any{"bed_type": "spinal"}}} {
		if _, _, err := again.svc.Transition(context.Background(), by, m); err != nil {
			t.Fatalf("move to %s: %v", m.To, err)
		}
	}
	proxy.setTarget(again.srv.Listener.Addr().String())
	proxy.restore()
	b.waitJS("awaiting a spinal bed: 1, after the restart", spinal+` === '1'`)
	if !eval[bool](b, `window.__marker === 1`) {
		t.Fatal("the wall screen reloaded; it should have resumed by itself")
	}
}
