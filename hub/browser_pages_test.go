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
	id := e.login(referrer.Email).newReferral()
	pages := map[string][]string{
		coord.Email:    {"/", "/referrals", "/referrals/" + id, "/board", "/notifications", "/account", "/wallboard"},
		referrer.Email: {"/referrals", "/referrals/new", "/referrals/" + id, "/notifications", "/account"},
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
