package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"patientpass/rooms"
)

// roomOpen navigates to a referral's room and waits until its replay is
// rendered (the page marks room-ready).
func roomOpen(b *browser, base, id string) {
	b.t.Helper()
	b.do(chromedp.Navigate(base+"/referrals/"+id), chromedp.WaitVisible(chromedp.ID("compose")))
	b.waitJS("the room to be ready", `performance.getEntriesByName('room-ready').length > 0`)
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// roomShows is a JavaScript test of whether the thread holds a stored
// message (one with its seq) whose text is body.
func roomShows(body string) string {
	return `[...document.querySelectorAll('.thread li.msg[data-seq] .ev-body')].some((e) => e.textContent === ` + jsString(body) + `)`
}

// roomWatchSending records, from now on, whether the page ever shows a
// message marked "sending…" (window.__sawSending).
func roomWatchSending(b *browser) {
	b.t.Helper()
	eval[bool](b, `(() => {
		window.__sawSending = false;
		const look = () => { if ([...document.querySelectorAll('.thread li.pending .ev-state')].some((e) => e.textContent === 'sending…')) window.__sawSending = true; };
		new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true });
		return true;
	})()`)
}

// roomSend types a message into the compose box and presses Enter.
func roomSend(b *browser, body string) {
	b.t.Helper()
	b.do(chromedp.SendKeys(chromedp.ID("compose"), body), roomPressEnter(false))
}

// roomPressEnter presses Enter (with Shift when shift) in the focused
// element as a keyboard does: one keydown carrying the text, so the page's
// preventDefault stops the new line (chromedp's SendKeys sends the text as
// an event of its own, which no page can cancel).
func roomPressEnter(shift bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		var mods int64
		if shift {
			mods = 8
		}
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: typ, Modifiers: mods, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text, p.UnmodifiedText = "\r", "\r"
			}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestBrowserRoomMessageReachesTheSpecialist(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	// The browser's clock is the real one: the server's starts there too,
	// so the deadline's countdown reads as it would on the ward.
	e.clock.Set(time.Now().UTC().Add(-20 * time.Minute))
	r := e.room()
	rb, sb := newBrowser(t, 1280), newBrowser(t, 1280)
	rb.login(e.base, r.referrer.Email)
	sb.login(e.base, r.specialist.Email)
	roomOpen(rb, e.base, r.id)
	roomOpen(sb, e.base, r.id)

	if nhs := rb.text(".room-facts .nhs"); nhs != "943 476 5919" {
		t.Fatalf("the NHS number shows as %q; want 943 476 5919", nhs)
	}
	for _, want := range []string{"Test Patient", "Consultant discussed: Yes", "Spinal precautions in place: Yes", "01244 365000", "urgent", "submitted"} {
		if head := rb.text(".room-head"); !strings.Contains(head, want) {
			t.Fatalf("the header says %q; want %q in it", head, want)
		}
	}

	sb.waitJS("the referrer among who is here", `document.querySelector('.presence-here').textContent === 'Here now: you, `+r.referrer.Name+`'`)

	roomWatchSending(rb)
	const question = "MRI shows cord compression at T7. Can you review today?"
	rb.do(chromedp.SendKeys(chromedp.ID("compose"), question))
	sb.waitJS("the referrer shown typing", `document.querySelector('.presence-typing')?.textContent === '`+r.referrer.Name+` is typing…'`)
	rb.do(roomPressEnter(false))
	rb.waitJS("the referrer's message to be sent", roomShows(question)+` && !document.querySelector('.thread li.pending')`)
	if !eval[bool](rb, `window.__sawSending`) {
		t.Fatal(`the message was never shown as "sending…" before it was sent`)
	}
	if v := eval[string](rb, `document.getElementById('compose').value`); v != "" {
		t.Fatalf("the compose box still holds %q after sending", v)
	}
	sb.waitJS("the referrer's message in the specialist's room", roomShows(question))

	// Shift+Enter is a new line within the message.
	const answer = "Reviewed: please keep flat, dexamethasone 16 mg.\nTransfer being arranged."
	first, second, _ := strings.Cut(answer, "\n")
	sb.do(chromedp.SendKeys(chromedp.ID("compose"), first), roomPressEnter(true), chromedp.SendKeys(chromedp.ID("compose"), second), roomPressEnter(false))
	rb.waitJS("the specialist's reply in the referrer's room", roomShows(answer))
	if n := eval[int](rb, `[...document.querySelectorAll('.thread .ev-body')].filter((e) => e.textContent === `+jsString(question)+`).length`); n != 1 {
		t.Fatalf("the referrer's message shows %d times; want once", n)
	}

	// Each browser marks what it has shown as read: the specialist up to
	// their own reply.
	deadline := time.Now().Add(waitFor)
	for got := r.sc.do("GET", "/api/referrals/"+r.id, nil); got.body["read_seq"] != 4.0; got = r.sc.do("GET", "/api/referrals/"+r.id, nil) {
		if time.Now().After(deadline) {
			t.Fatalf("the specialist's read marker is at %v; want 4", got.body["read_seq"])
		}
		time.Sleep(100 * time.Millisecond)
	}

	rb.noConsoleErrors(loggedOut)
	sb.noConsoleErrors(loggedOut)
	rb.screenshot("room")
}

// roomProxy is a TCP proxy in front of a node: cut drops every connection
// through it and refuses new ones until restore, which is what a browser
// sees of a node going down and coming back on the same address.
type roomProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	down   bool
	conns  map[net.Conn]struct{}
}

func newRoomProxy(t *testing.T) *roomProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &roomProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *roomProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *roomProxy) setTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

func (p *roomProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, target := p.down, p.target
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *roomProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut drops every connection and refuses new ones.
func (p *roomProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *roomProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func TestBrowserRoomResumesAfterRestart(t *testing.T) {
	// The browser reaches the node through a proxy of the test's own, as
	// through a load balancer: the node behind it is stopped and a new one
	// started on the same store, as a restart does.
	proxy := newRoomProxy(t)
	store := openEmbedded(t)
	e := newEnvWith(t, store, func(c *envConfig) { c.PublicURL = proxy.url() })
	proxy.setTarget(e.srv.Listener.Addr().String())
	r := e.room()
	b := newBrowser(t, 1280)
	b.login(proxy.url(), r.referrer.Email)
	roomOpen(b, proxy.url(), r.id)
	b.waitJS("the connection to be live", `document.querySelector('.conn').textContent.includes('live')`)
	eval[bool](b, `(window.__marker = 1) === 1`)

	proxy.cut() // the node goes: its connections drop and nothing answers
	e.srv.Close()
	b.waitJS(`the shell to say "reconnecting…"`, `document.querySelector('.conn').textContent === 'reconnecting…'`)
	again := newEnvWith(t, store, func(c *envConfig) { c.PublicURL = proxy.url() })
	missed := []string{"Posted while you were away: MRI report uploaded", "Posted while you were away: please call the ward"}
	for i, body := range missed {
		if _, err := again.svc.PostMessage(context.Background(), rooms.Caller{User: r.specialist, ClientAddr: "127.0.0.1"},
			rooms.PostMessage{Ref: fmt.Sprintf("away-%d", i), ReferralID: r.id, Body: body}); err != nil {
			t.Fatalf("post %q: %v", body, err)
		}
	}
	proxy.setTarget(again.srv.Listener.Addr().String())
	proxy.restore()

	for _, body := range missed {
		b.waitJS("the message missed while the node was away", roomShows(body))
	}
	b.waitJS("the connection to be live again", `document.querySelector('.conn').textContent.includes('live')`)
	if !eval[bool](b, `window.__marker === 1`) {
		t.Fatal("the page reloaded to show the missed messages")
	}
	if n := eval[int](b, `document.querySelectorAll('.thread li.ev[data-seq]').length`); n != 4 {
		t.Fatalf("the thread shows %d events; want 4 (created, submitted and the two missed messages)", n)
	}
	// The dropped socket's failed reconnections are expected.
	b.noConsoleErrors(loggedOut, "WebSocket", "ERR_CONNECTION", "ERR_EMPTY_RESPONSE")
}

// planSection is the CSS selector of a plan section's element.
func planSection(name string) string { return `section.plan-section[data-section="` + name + `"]` }

// roomEditPlan opens a plan section's editor and types text into it.
func roomEditPlan(b *browser, section, text string) {
	b.t.Helper()
	b.do(
		chromedp.Click(chromedp.CSS(planSection(section)+" button[aria-label^='Edit']")),
		chromedp.WaitVisible(chromedp.ID("plan-"+section)),
		chromedp.SendKeys(chromedp.ID("plan-"+section), text),
	)
}

func TestBrowserRoomPlanConflict(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	r := e.room()
	rb, sb := newBrowser(t, 1280), newBrowser(t, 1280)
	rb.login(e.base, r.referrer.Email)
	sb.login(e.base, r.specialist.Email)
	roomOpen(rb, e.base, r.id)
	roomOpen(sb, e.base, r.id)

	const theirs, mine = "Whole spine MRI reviewed: T7 compression.", "MRI to be repeated with contrast."
	roomEditPlan(sb, "imaging", theirs)
	roomEditPlan(rb, "imaging", mine)
	sb.do(chromedp.Click(chromedp.CSS(planSection("imaging") + " button[type=submit]")))
	sb.waitJS("the specialist's save", `document.querySelector('`+planSection("imaging")+` .plan-text')?.textContent === `+jsString(theirs))

	rb.do(chromedp.Click(chromedp.CSS(planSection("imaging") + " button[type=submit]")))
	rb.waitJS("the conflict view", `document.querySelector('`+planSection("imaging")+` .plan-conflict')`)
	conflict := rb.text(planSection("imaging") + " .plan-conflict")
	for _, want := range []string{r.specialist.Name + " changed this section first", theirs, mine, "revision 1"} {
		if !strings.Contains(conflict, want) {
			t.Fatalf("the conflict view says %q; want %q in it", conflict, want)
		}
	}

	// Re-apply mine on top of theirs: both browsers show it at revision 2.
	rb.do(chromedp.Click(chromedp.CSS(planSection("imaging") + " .plan-conflict button.primary")))
	for _, b := range []*browser{rb, sb} {
		b.waitJS("the re-applied text at revision 2", `document.querySelector('`+planSection("imaging")+` .plan-text')?.textContent === `+jsString(mine)+
			` && document.querySelector('`+planSection("imaging")+` .plan-meta').textContent.includes('Revision 2')`)
	}
	rb.noConsoleErrors(loggedOut)
	sb.noConsoleErrors(loggedOut)
}

// roomAct opens a status action's form.
func roomAct(b *browser, to string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(`.room-actions button[data-to="`+to+`"]`)), chromedp.WaitVisible(chromedp.CSS(".transition-form")))
}

func TestBrowserRoomStatusActions(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	r := e.room()
	b := newBrowser(t, 1280)
	b.login(e.base, r.specialist.Email)
	roomOpen(b, e.base, r.id)
	status := func() string { return b.text(".room-head .room-status") }
	if s := status(); s != "submitted" {
		t.Fatalf("status %q; want submitted", s)
	}

	roomAct(b, "in_triage")
	b.do(chromedp.Click(chromedp.CSS(".transition-form .tr-submit")))
	b.waitJS("the status to be in triage", `document.querySelector('.room-head .room-status').textContent === 'in triage'`)
	if head := b.text(".room-facts"); !strings.Contains(head, "Assigned to\n"+r.specialist.Name) {
		t.Fatalf("the header says %q; want the referral claimed by %s", head, r.specialist.Name)
	}

	// Accept without a bed type: the API's message at the bed type field.
	roomAct(b, "accepted")
	b.do(chromedp.Click(chromedp.CSS(".transition-form .tr-submit")))
	b.waitJS("the error at the bed type", `document.getElementById('tr-outcome-bed_type').closest('.field').querySelector('.error-text')`)
	if msg := b.text(".transition-form .field.has-error .error-text"); !strings.Contains(msg, "bed type is required") {
		t.Fatalf("the bed type field says %q; want the API's message that it is required", msg)
	}
	if s := status(); s != "in triage" {
		t.Fatalf("a refused move changed the status to %q", s)
	}

	eval[bool](b, `(() => {
		const s = document.getElementById('tr-outcome-bed_type');
		s.value = 'spinal';
		s.dispatchEvent(new Event('change', { bubbles: true }));
		return true;
	})()`)
	b.do(chromedp.Click(chromedp.CSS(".transition-form .tr-submit")))
	b.waitJS("the status to be accepted", `document.querySelector('.room-head .room-status').textContent === 'accepted'`)
	if head := b.text(".room-head"); !strings.Contains(head, "Bed type: spinal") {
		t.Fatalf("the header says %q; want the bed type accepted for", head)
	}
	if thread := b.text(".thread"); !strings.Contains(thread, "moved the referral from in triage to accepted") {
		t.Fatalf("the thread says %q; want the move to accepted", thread)
	}
	// An accepted referral offers the specialist nothing more until a
	// transfer is booked (that is the bed managers' and coordinators').
	if n := eval[int](b, `document.querySelectorAll('.room-actions button[data-to]').length`); n != 0 {
		t.Fatalf("%d actions offered to the specialist on an accepted referral; want none", n)
	}
	b.noConsoleErrors(loggedOut)
}

func TestBrowserRoomNotFound(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	r := e.room()
	outsider := e.user("RBL", rooms.UserActive, rooms.RoleClinician)
	b := newBrowser(t, 1280)
	b.login(e.base, outsider.Email)
	b.do(chromedp.Navigate(e.base + "/referrals/" + r.id))
	if h := b.text("main h1"); h != "Referral not found" {
		t.Fatalf("an outsider opening the room sees %q; want Referral not found", h)
	}
	b.noConsoleErrors(loggedOut, "404 (Not Found)")
}

func TestBrowserRoomOpensLargeRoom(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	r := e.room()
	ctx := context.Background()
	caller := rooms.Caller{User: r.referrer}
	const events = 2000 // created and submitted, then the messages
	for i := 3; i <= events; i++ {
		body := fmt.Sprintf("Observation %d: GCS 15, power 4/5 in both legs, sensory level unchanged at T8.", i)
		if _, err := e.svc.PostMessage(ctx, caller, rooms.PostMessage{Ref: fmt.Sprintf("bulk-%d", i), ReferralID: r.id, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, 1280)
	b.login(e.base, r.specialist.Email)
	roomOpen(b, e.base, r.id)
	if n := eval[int](b, `document.querySelectorAll('.thread li.ev[data-seq]').length`); n != events {
		t.Fatalf("the room shows %d events; want %d", n, events)
	}
	ready := eval[float64](b, `performance.getEntriesByName('room-ready')[0].startTime`)
	t.Logf("a room of %d events is ready %.0f ms after navigation start", events, ready)

	b.noConsoleErrors(loggedOut)
}
