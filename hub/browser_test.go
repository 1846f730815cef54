package hub_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is one headless Chromium tab, its console watched: any error on
// it (a script error, a CSP violation, a failed load) fails the test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	errs []string // guarded by mu
}

// chromiumPath finds Debian's chromium (or another Chrome); without one the
// browser tests skip, unless CI is set: then they fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI=%s: Chromium must be installed for the browser tests (apt-get install chromium)", os.Getenv("CI"))
	}
	t.Skip("Chromium is not installed (apt-get install chromium, or set CI to make this fail)")
	return ""
}

// newBrowser opens a fresh browser profile (its own cookies) at width×900.
func newBrowser(t *testing.T, width int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(width, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.errs = append(b.errs, string(m.Type)+": "+m.Text+" "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	return b
}

// do runs actions with the test's bound on waiting.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// text returns the text of the first element matching the CSS selector,
// once it is visible.
func (b *browser) text(css string) string {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(css)))
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the expression is true in the page.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(waitFor)
	for !eval[bool](b, "!!("+expr+")") {
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %s for %s", waitFor, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consoleErrors returns what the console reported, and forgets it; allow
// lists substrings of expected messages (a 4xx the page handles).
func (b *browser) consoleErrors(allow ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, e := range b.errs {
		ok := false
		for _, a := range allow {
			ok = ok || strings.Contains(e, a)
		}
		if !ok {
			out = append(out, e)
		}
	}
	b.errs = nil
	return out
}

// loggedOut is the console's note of the shell asking who is signed in
// before anyone is: expected on the login page.
const loggedOut = "401 (Unauthorized) http://127.0.0.1"

// noConsoleErrors fails the test on any console error, CSP violation
// included.
func (b *browser) noConsoleErrors(allow ...string) {
	b.t.Helper()
	if errs := b.consoleErrors(allow...); len(errs) > 0 {
		b.t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// login logs the browser in as email through the login page.
func (b *browser) login(base, email string) {
	b.t.Helper()
	b.do(
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), testPassword+"\n"),
		chromedp.WaitVisible(chromedp.CSS("header.top")),
	)
}

// screenshot takes a picture of the page as name.png: into
// static/screenshots, for the README, when UPDATE_SCREENSHOTS is set
// (`UPDATE_SCREENSHOTS=1 go test ./hub -run TestBrowser`); otherwise into
// the test's temporary directory, so a test run leaves the tree as it was.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dir := b.t.TempDir()
	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "static", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func TestBrowserLogsInWithoutConsoleErrors(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", "active", "clinician")
	b := newBrowser(t, 1280)
	b.do(chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(chromedp.ID("email")))
	b.login(e.base, u.Email)
	if h := b.text("main h1"); !strings.Contains(h, "Referrals") {
		t.Fatalf("after logging in the page says %q; want the referrals", h)
	}
	b.noConsoleErrors(loggedOut)
}
