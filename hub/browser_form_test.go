package hub_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"patientpass/rooms"
)

// The referral list and the new referral form in a real browser.

// badRequest is the console's note of a 400 the form shows at its field.
const badRequest = "400 (Bad Request)"

// field selects the element whose id is an API field name: those hold dots,
// which chromedp.ID would read as classes.
func field(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf("[id=%q]", id)) }

// setValue sets an input's value as a picker would (date, datetime-local,
// select), firing the events the page listens to.
func (b *browser) setValue(id, value string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const el = document.getElementById(%q); el.value = %q;
		el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true}));
		return el.value === %q; })()`, id, value, value)
	if !eval[bool](b, js) {
		b.t.Fatalf("could not set %s to %q", id, value)
	}
}

// retype replaces what an input holds by typing value over it.
func (b *browser) retype(id, value string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(() => { const el = document.getElementById(%q); el.focus(); el.select(); return true; })()`, id))
	b.do(chromedp.SendKeys(field(id), value))
}

// value is an input's current value.
func (b *browser) value(id string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`document.getElementById(%q).value`, id))
}

func (b *browser) checked(id string) bool {
	b.t.Helper()
	return eval[bool](b, fmt.Sprintf(`document.getElementById(%q).checked`, id))
}

// loginLive logs the browser in and waits for its live connection. The
// shell stops the connection when the login page finds no session and does
// not start it again on logging in, so the page is loaded afresh.
func (b *browser) loginLive(base, email string) {
	b.t.Helper()
	b.login(base, email)
	b.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".conn-live")))
}

// fillReferral completes the new referral form as a referrer would, with
// the NHS number given.
func (b *browser) fillReferral(nhs string) {
	b.t.Helper()
	b.do(
		chromedp.SendKeys(field("patient.nhs_number"), nhs),
		chromedp.SendKeys(field("patient.name"), "Margaret Evans"),
	)
	b.setValue("patient.date_of_birth", "1951-04-30")
	b.setValue("patient.sex", "female")
	b.do(
		chromedp.Click(field("priority-urgent")),
		chromedp.SendKeys(field("form.primary_cancer"), "Prostate adenocarcinoma"),
		chromedp.SendKeys(field("form.spinal_levels"), "T6-T8"),
		chromedp.Click(field("form.neuro_limb_weakness")), // yes: the onset becomes required
		chromedp.Click(field("form.neuro_bladder_bowel-false")),
	)
	b.setValue("form.ambulatory_status", "with_aid")
	b.setValue("form.neuro_onset_at", "2026-11-23T07:30")
	b.do(
		chromedp.Click(field("form.steroids_given")),
		chromedp.SendKeys(field("form.steroids_dose_mg"), "16"),
		chromedp.SendKeys(field("form.sins_score"), "9"),
		chromedp.SendKeys(field("contact_phone"), "01244 365000"),
		chromedp.Click(field("form.spinal_precautions")),
		chromedp.Click(field("consultant_discussed")),
	)
}

// noHorizontalOverflow fails the test when the page is wider than the
// window.
func (b *browser) noHorizontalOverflow(what string) {
	b.t.Helper()
	if w := eval[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		b.t.Errorf("%s is %d px wide in a %d px window", what, w[0], w[1])
	}
}

var referralPath = regexp.MustCompile(`^/referrals/([0-9A-Za-z-]+)$`)

func TestBrowserNewReferralShowsFieldErrorsThenSubmits(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	b := newBrowser(t, 1280)
	b.login(e.base, u.Email)
	b.do(chromedp.Navigate(e.base+"/referrals/new"), chromedp.WaitVisible(field("patient.nhs_number")))

	b.fillReferral("9434765918") // fails the check digit
	if got := b.value("patient.nhs_number"); got != "943 476 5918" {
		t.Errorf("the NHS number reads %q as typed; want it grouped 943 476 5918", got)
	}
	if got := b.text(`[id="patient.nhs_number-check"]`); !strings.Contains(got, "not a valid NHS number") {
		t.Errorf("the live check of a wrong NHS number says %q", got)
	}

	b.do(chromedp.Click(chromedp.CSS(`.actions button.primary`)))
	if got := b.text(`[id="patient.nhs_number-error"]`); !strings.Contains(got, "NHS number") {
		t.Fatalf("the NHS number's error reads %q", got)
	}
	b.waitJS("the error summary to take focus", `document.activeElement && document.activeElement.classList.contains('summary-wrap')`)
	if href := eval[string](b, `document.querySelector('.error-summary a').getAttribute('href')`); href != "#patient.nhs_number" {
		t.Errorf("the error summary links to %q; want the NHS number", href)
	}
	b.do(chromedp.Click(chromedp.CSS(`.error-summary a`)))
	b.waitJS("the summary's link to focus the field", `document.activeElement.id === 'patient.nhs_number'`)
	if path := eval[string](b, `location.pathname`); path != "/referrals/new" {
		t.Fatalf("following the summary's link left the form for %s", path)
	}
	b.screenshot("new-referral")
	if n := len(e.listReferrals(u.Email)); n != 0 {
		t.Fatalf("%d referrals exist after a refused submission", n)
	}

	b.retype("patient.nhs_number", "9434765919")
	if got := b.text(`[id="patient.nhs_number-check"]`); !strings.Contains(got, "NHS number looks right") {
		t.Errorf("the live check of a right NHS number says %q", got)
	}
	b.waitJS("the corrected field's error to go", `!document.getElementById('patient.nhs_number-error')`)
	b.do(chromedp.Click(chromedp.CSS(`.actions button.primary`)))
	b.waitJS("the referral's page", `/^\/referrals\/(?!new$)[^/]+$/.test(location.pathname)`)
	m := referralPath.FindStringSubmatch(eval[string](b, `location.pathname`))
	if m == nil {
		t.Fatalf("landed on %s", eval[string](b, `location.pathname`))
	}

	res := e.login(u.Email).do("GET", "/api/referrals/"+m[1], nil)
	if res.status != 200 {
		t.Fatalf("GET the new referral = %d %s", res.status, res.raw)
	}
	var got rooms.Referral
	if err := json.Unmarshal([]byte(res.raw), &got); err != nil {
		t.Fatal(err)
	}
	onset, _ := got.Form["neuro_onset_at"].(string)
	if got.Status != rooms.StatusSubmitted || got.Priority != rooms.PriorityUrgent || got.Patient.NHSNumber != "9434765919" ||
		got.Patient.DateOfBirth != "1951-04-30" || got.Patient.Sex != "female" || got.ContactPhone != "01244 365000" ||
		!got.ConsultantDiscussed || got.Form["spinal_levels"] != "T6-T8" || got.Form["neuro_limb_weakness"] != true ||
		got.Form["neuro_bladder_bowel"] != false || got.Form["ambulatory_status"] != "with_aid" ||
		got.Form["steroids_dose_mg"] != 16.0 || got.Form["sins_score"] != 9.0 || got.Form["spinal_precautions"] != true {
		t.Errorf("the referral made is %s", res.raw)
	}
	if _, err := time.Parse(time.RFC3339, onset); err != nil || !strings.HasSuffix(onset, "Z") {
		t.Errorf("the onset was sent as %q; want an RFC 3339 time in UTC", onset)
	}
	if left := eval[int](b, `sessionStorage.length + localStorage.length`); left != 0 {
		t.Errorf("%d entries are left in the browser's storage after submitting", left)
	}
	b.noConsoleErrors(loggedOut, badRequest)
}

// listReferrals is what GET /api/referrals gives the user.
func (e *env) listReferrals(email string) []any {
	e.t.Helper()
	res := e.login(email).do("GET", "/api/referrals", nil)
	if res.status != 200 {
		e.t.Fatalf("GET /api/referrals = %d %s", res.status, res.raw)
	}
	return res.body["referrals"].([]any)
}

// referralAt creates, as the referrer, a submitted referral at the server
// time at, of the priority given, for the patient named.
func (e *env) referralAt(referrer rooms.User, at time.Time, priority, name, nhs string) string {
	e.t.Helper()
	e.clock.Set(at)
	body := referralBody(rooms.NewID())
	body["priority"] = priority
	body["patient"].(map[string]any)["name"] = name
	body["patient"].(map[string]any)["nhs_number"] = nhs
	res := e.login(referrer.Email).do("POST", "/api/referrals", body)
	if res.status != 201 {
		e.t.Fatalf("create referral = %d %s", res.status, res.raw)
	}
	return res.body["id"].(string)
}

func TestBrowserReferralListIsLive(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	specialist := e.user("RET", rooms.UserActive, rooms.RoleSpecialist)
	// The triage clocks run on the server's time; the browser counts down
	// on its own, so the server's clock is set to the real one.
	now := time.Now()
	e.referralAt(referrer, now.Add(-2*time.Hour), "emergency", "Arthur Jones", "4010232137")  // due an hour ago
	e.referralAt(referrer, now.Add(-210*time.Minute), "urgent", "Gwen Roberts", "9434765870") // 30 min of 4 h left
	e.clock.Set(now)

	b := newBrowser(t, 1280)
	b.loginLive(e.base, specialist.Email)
	b.do(chromedp.WaitVisible(chromedp.CSS(`.referral-list tbody tr`)))
	rows := func() int { return eval[int](b, `document.querySelectorAll('.referral-list tbody tr').length`) }
	if n := rows(); n != 2 {
		t.Fatalf("the list shows %d referrals; want 2", n)
	}
	if got := b.text(`.referral-list tbody tr:nth-child(1) .due`); !strings.HasPrefix(got, "Overdue by 1 h") {
		t.Errorf("the emergency an hour past its deadline shows %q", got)
	}
	if !eval[bool](b, `document.querySelector('.referral-list tbody tr:nth-child(1) .due').classList.contains('overdue')`) {
		t.Errorf("the overdue referral's countdown is not marked overdue")
	}
	if got := b.text(`.referral-list tbody tr:nth-child(2) .due`); !strings.HasPrefix(got, "Due soon:") ||
		!eval[bool](b, `document.querySelector('.referral-list tbody tr:nth-child(2) .due').classList.contains('due-soon')`) {
		t.Errorf("the urgent referral past 75%% of its window shows %q, not marked due soon", got)
	}

	// A referral made elsewhere appears without a reload.
	id := e.login(referrer.Email).newReferral()
	b.waitJS("the new referral in the list", `document.querySelectorAll('.referral-list tbody tr').length === 3`)
	row := fmt.Sprintf(`.referral-list a[href="/referrals/%s"]`, id)
	b.do(chromedp.WaitVisible(chromedp.CSS(row)))
	cells := eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelector('%s').closest('tr').cells, (c) => c.innerText)`, row))
	if !strings.Contains(cells[0], "Test Patient") || !strings.Contains(cells[0], "NHS 943 476 5919") {
		t.Errorf("the new referral's patient cell reads %q; want the name and the NHS number as 943 476 5919", cells[0])
	}
	if !strings.Contains(cells[1], "Urgent") || !strings.Contains(cells[2], "Submitted") || !strings.Contains(cells[3], "3 h 59 min left") {
		t.Errorf("the new referral's row reads %q", cells)
	}
	b.screenshot("referrals")

	// Filters go to the API; a row opens the referral.
	b.setValue("filter-priority", "emergency")
	b.waitJS("the emergency filter", `document.querySelectorAll('.referral-list tbody tr').length === 1`)
	if q := eval[string](b, `location.search`); q != "?priority=emergency" {
		t.Errorf("the filtered list's address has %q", q)
	}
	b.do(chromedp.Click(chromedp.CSS(`.referral-list tbody td.status`)))
	b.waitJS("the referral's page", `/^\/referrals\/(?!new$)[^/]+$/.test(location.pathname)`)
	b.noConsoleErrors(loggedOut)
}

func TestBrowserDraftSurvivesReload(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	e.login(u.Email).newReferral()
	b := newBrowser(t, 768) // a tablet, or a narrow window
	b.login(e.base, u.Email)
	b.do(chromedp.WaitVisible(chromedp.CSS(`.referral-list tbody tr`)))
	b.noHorizontalOverflow("the referral list")
	b.do(chromedp.Click(chromedp.CSS(`.page-head a.button`)), chromedp.WaitVisible(field("patient.nhs_number")))
	b.noHorizontalOverflow("the new referral form")

	b.do(
		chromedp.SendKeys(field("patient.nhs_number"), "9434765919"),
		chromedp.SendKeys(field("patient.name"), "Margaret Evans"),
		chromedp.Click(field("priority")), // emergency
		chromedp.SendKeys(field("form.spinal_levels"), "T6-T8"),
		chromedp.Click(field("form.spinal_precautions-false")),
		chromedp.SendKeys(field("contact_phone"), "01244 365000\n"), // Enter does not submit
		chromedp.Click(field("consultant_discussed")),
	)
	if path := eval[string](b, `location.pathname`); path != "/referrals/new" {
		t.Fatalf("Enter in the contact phone left the form for %s", path)
	}
	// The draft is kept as the user goes: wait for the last answer to be in
	// it (a loaded machine handles the click a moment later), then reload.
	b.waitJS("the draft to hold the consultant's tick", `Object.keys(sessionStorage).some((k) => k.startsWith('pp.draft.') && sessionStorage.getItem(k).includes('"consultant_discussed":true'))`)
	b.do(chromedp.Reload(), chromedp.WaitVisible(field("patient.nhs_number")))
	b.do(chromedp.WaitVisible(chromedp.CSS(`.draft-note`)))
	if got := b.value("patient.nhs_number"); got != "943 476 5919" {
		t.Errorf("after a reload the NHS number reads %q", got)
	}
	if got := b.value("patient.name"); got != "Margaret Evans" {
		t.Errorf("after a reload the name reads %q", got)
	}
	if got := b.value("form.spinal_levels"); got != "T6-T8" {
		t.Errorf("after a reload the spinal levels read %q", got)
	}
	if got := b.value("contact_phone"); got != "01244 365000" {
		t.Errorf("after a reload the contact phone reads %q", got)
	}
	for id, want := range map[string]bool{"priority": true, "form.spinal_precautions-false": true, "form.spinal_precautions": false, "consultant_discussed": true} {
		if got := b.checked(id); got != want {
			t.Errorf("after a reload %s is checked %v; want %v", id, got, want)
		}
	}
	if n := eval[int](b, `localStorage.length`); n != 0 {
		t.Errorf("the draft went to localStorage (%d entries); it belongs to this tab only", n)
	}
	if n := len(e.listReferrals(u.Email)); n != 1 {
		t.Errorf("%d referrals exist; typing and reloading must not make one", n)
	}

	b.do(chromedp.Click(chromedp.CSS(`.draft-note button`)))
	b.waitJS("an empty form", `document.getElementById('patient.name').value === ''`)
	if n := eval[int](b, `sessionStorage.length`); n > 1 {
		t.Errorf("starting again left %d drafts", n)
	}
	b.noConsoleErrors(loggedOut)
}
