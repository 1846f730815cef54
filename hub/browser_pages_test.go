package hub_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"patientpass/rooms"
)

// TestBrowserEveryPageWithoutConsoleErrors opens every page of the UI as
// the people who use it, at desktop, tablet (768 px) and phone (390 px)
// widths, and fails on any console error — a CSP violation, a script
// error, a failed load — and on a page wider than the screen.
func TestBrowserEveryPageWithoutConsoleErrors(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	coord := e.user("RET", rooms.UserActive, rooms.RoleCoordinator, rooms.RoleSpecialist)
	referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	bedManager := e.user("RET", rooms.UserActive, rooms.RoleBedManager)
	id := e.login(referrer.Email).newReferral()
	pages := map[string][]string{
		bedManager.Email: {"/referrals", "/referrals/" + id, "/board", "/wallboard"},
		coord.Email:      {"/", "/referrals", "/referrals/" + id, "/board", "/notifications", "/account", "/wallboard"},
		referrer.Email:   {"/referrals", "/referrals/new", "/referrals/" + id, "/notifications", "/account"},
	}
	for _, width := range []int{1280, 768, 390} {
		for email, paths := range pages {
			b := newBrowser(t, width)
			b.login(e.base, email)
			for _, p := range paths {
				b.do(chromedp.Navigate(e.base+p), chromedp.WaitVisible(chromedp.CSS("main")))
				b.waitJS("the page "+p+" to render", `document.querySelector('main') && !document.querySelector('main .loading')`)
				if over := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); over && p != "/wallboard" {
					t.Errorf("%s at %d px is wider than the screen (%s)", p, width, email)
				}
				if errs := b.consoleErrors(loggedOut, "403 (Forbidden)"); len(errs) > 0 {
					t.Errorf("%s at %d px as %s: %s", p, width, email, strings.Join(errs, "; "))
				}
			}
		}
	}
	// The login and registration pages, signed out.
	b := newBrowser(t, 390)
	for _, p := range []string{"/login", "/register", "/pending"} {
		b.do(chromedp.Navigate(e.base+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if errs := b.consoleErrors(loggedOut); len(errs) > 0 {
			t.Errorf("%s signed out: %s", p, strings.Join(errs, "; "))
		}
	}
}

// TestBrowserEndedSessionTakesThePatientOffTheScreen ends a clinician's
// session while their browser shows a room (as an idle timeout, a logout
// elsewhere or a suspension does): the page goes to the login page, and
// nothing of the patient, nor their draft, stays in the tab.
func TestBrowserEndedSessionTakesThePatientOffTheScreen(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	r := e.room()
	b := newBrowser(t, 1280)
	b.login(e.base, r.referrer.Email)
	b.do(chromedp.Navigate(e.base + "/referrals/new"))
	b.do(chromedp.WaitVisible(chromedp.CSS("main input")))
	b.do(chromedp.Navigate(e.base+"/referrals/"+r.id), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.waitJS("the room to show the patient", `document.body.innerText.includes('943 476 5919')`)
	eval[bool](b, `(sessionStorage.setItem('pp.draft.new-referral.x', '{"name":"Test Patient"}'), true)`)
	e.rt.EndSessions("", r.referrer.ID) // as a suspension does, on every node
	b.waitJS("the login page", `location.pathname === '/login' && !!document.getElementById('email')`)
	if eval[bool](b, `document.body.innerText.includes('943 476 5919') || document.body.innerText.includes('Test Patient')`) {
		t.Fatal("the patient is still on the screen after the session ended")
	}
	if n := eval[int](b, `Object.keys(sessionStorage).filter((k) => k.startsWith('pp.')).length`); n != 0 {
		t.Fatalf("%d drafts survived the session", n)
	}
}
