package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"patientpass/rooms"
)

// fhirGet reads a FHIR path as the client and returns the decoded answer.
func (c *client) fhirGet(path string) response {
	c.e.t.Helper()
	res := c.do("GET", path, nil)
	if ct := res.header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
		c.e.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	return res
}

// outcome returns an OperationOutcome's first issue code and expression.
func (r response) outcome() (code, expression string) {
	if r.body["resourceType"] != "OperationOutcome" {
		return "", ""
	}
	issues, _ := r.body["issue"].([]any)
	if len(issues) == 0 {
		return "", ""
	}
	issue := issues[0].(map[string]any)
	code, _ = issue["code"].(string)
	if ex, ok := issue["expression"].([]any); ok && len(ex) > 0 {
		expression, _ = ex[0].(string)
	}
	return code, expression
}

// TestFHIRSyncFeedPicksUpEveryChangeOnceAcrossPages runs the sync loop of
// an EPR, ServiceRequest?_lastUpdated=gt… followed through its next links,
// while messages keep changing the referrals it pages through: no version
// of a referral comes twice, each referral's versions come in order, and
// once the changes stop the client holds every referral's last version.
func TestFHIRSyncFeedPicksUpEveryChangeOnceAcrossPages(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		ids := []string{r.id}
		for range 11 {
			ids = append(ids, r.rc.newReferral())
		}
		// A change shows once it has settled: one that could still be
		// committing would let a late commit, stamped earlier, slip
		// behind the cursor.
		first := "/fhir/R4/ServiceRequest?_lastUpdated=gt" + url.QueryEscape(start.Add(-time.Hour).Format(time.RFC3339)) + "&_count=3"
		e.clock.Advance(rooms.ChangeSettle - time.Second)
		if res := r.sc.fhirGet(first); res.status != 200 || res.body["entry"] != nil {
			t.Fatalf("the feed shows changes before they settle: %d %s", res.status, res.raw)
		}
		e.clock.Advance(2 * time.Second)

		// Changes keep arriving while the client pages: messages on the
		// referrals, round-robin, from the referrer, each with the clock a
		// little later.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[i%len(ids)]
				res := r.rc.do("POST", "/api/referrals/"+id+"/messages", map[string]any{"ref": rooms.NewID(), "body": fmt.Sprintf("update %d", i)})
				if res.status != 201 {
					t.Errorf("post message: %d %s", res.status, res.raw)
					return
				}
				e.clock.Advance(100 * time.Millisecond)
			}
		}()

		type version struct {
			id      string
			version int64
		}
		seen := map[version]bool{}
		latest := map[string]int64{}
		var lastUpdated string
		pages, repeats := 0, 0
		next := first
		page := func() {
			res := r.sc.fhirGet(next)
			if res.status != 200 || res.body["type"] != "searchset" {
				t.Fatalf("GET %s: %d %s", next, res.status, res.raw)
			}
			pages++
			entries, _ := res.body["entry"].([]any)
			for _, en := range entries {
				sr := en.(map[string]any)["resource"].(map[string]any)
				meta := sr["meta"].(map[string]any)
				v, _ := strconv.ParseInt(meta["versionId"].(string), 10, 64)
				k := version{sr["id"].(string), v}
				if seen[k] {
					t.Errorf("version %d of %s came twice", v, k.id)
				}
				if prev, ok := latest[k.id]; ok {
					repeats++
					if v <= prev {
						t.Errorf("%s: version %d after %d", k.id, v, prev)
					}
				}
				seen[k], latest[k.id] = true, v
				lastUpdated = meta["lastUpdated"].(string)
			}
			next = ""
			links, _ := res.body["link"].([]any)
			for _, l := range links {
				if l := l.(map[string]any); l["relation"] == "next" {
					u, err := url.Parse(l["url"].(string))
					if err != nil || !strings.HasPrefix(l["url"].(string), e.base+"/fhir/R4/") {
						t.Fatalf("next link %v", l["url"])
					}
					next = u.RequestURI()
				}
			}
		}
		// Rounds of the sync loop: follow the pages, then ask again for what
		// changed after the last change seen.
		for round := 0; round < 8; round++ {
			for next != "" {
				page()
				e.clock.Advance(2 * time.Second)
			}
			e.clock.Advance(10 * time.Second)
			next = "/fhir/R4/ServiceRequest?_lastUpdated=gt" + url.QueryEscape(lastUpdated) + "&_count=3"
		}
		close(stop)
		wg.Wait()
		e.clock.Advance(rooms.ChangeSettle + time.Second)
		for next != "" {
			page()
		}

		for _, id := range ids {
			ref, err := e.store.Referral(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if latest[id] != ref.HeadSeq {
				t.Errorf("%s: the client holds version %d; the store %d", id, latest[id], ref.HeadSeq)
			}
		}
		if pages < 10 || repeats == 0 {
			t.Errorf("%d pages, %d referrals seen again after a change; want paging through changes", pages, repeats)
		}
		t.Logf("%d pages, %d versions, %d seen again after a change", pages, len(seen), repeats)
	})
}

// TestFHIRReadsFollowTheAccessRulesAndAreAudited reads a referral's
// resources as its receiving specialist, as a clinician of another
// organisation and with bad parameters: the outsider and a referral that
// does not exist get the same not-found OperationOutcome, bad parameters
// are named, and every read and refusal is in the audit trail.
func TestFHIRReadsFollowTheAccessRulesAndAreAudited(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		outsider := e.user("RBL", rooms.UserActive, rooms.RoleSpecialist)
		oc := e.login(outsider.Email)

		for _, typ := range []string{"ServiceRequest", "Task", "Patient", "CarePlan"} {
			if res := r.sc.fhirGet("/fhir/R4/" + typ + "/" + r.id); res.status != 200 || res.body["resourceType"] != typ {
				t.Errorf("%s as the specialist: %d %s", typ, res.status, res.raw)
			}
			mine := oc.fhirGet("/fhir/R4/" + typ + "/" + r.id)
			none := oc.fhirGet("/fhir/R4/" + typ + "/" + rooms.NewID())
			for _, res := range []response{mine, none} {
				if code, _ := res.outcome(); res.status != 404 || code != "not-found" {
					t.Errorf("%s as an outsider: %d %s; want 404 not-found", typ, res.status, res.raw)
				}
			}
			if mine.raw != none.raw {
				t.Errorf("an outsider tells a referral it may not see from none: %s vs %s", mine.raw, none.raw)
			}
		}
		views := e.audit(rooms.AuditFilter{ReferralID: r.id, ActorID: r.specialist.ID, Event: "referral.view"})
		if len(views) != 4 {
			t.Errorf("%d referral.view entries for the specialist's 4 reads; want 4", len(views))
		}
		denied := e.audit(rooms.AuditFilter{ReferralID: r.id, ActorID: outsider.ID, Outcome: rooms.OutcomeDenied})
		if len(denied) != 4 {
			t.Errorf("%d denied entries for the outsider's 4 reads; want 4", len(denied))
		}
		for _, d := range denied {
			if d.PatientNHSNumber != "" {
				t.Errorf("a refusal names the patient: %+v", d)
			}
		}

		for _, tc := range []struct{ path, field string }{
			{"/fhir/R4/ServiceRequest?_count=1000", "_count"},
			{"/fhir/R4/ServiceRequest?_count=x", "_count"},
			{"/fhir/R4/ServiceRequest?_lastUpdated=2026-01-01", "_lastUpdated"},
			{"/fhir/R4/ServiceRequest?_page=nope", "_page"},
			{"/fhir/R4/ServiceRequest?subject=x", "subject"},
			{"/fhir/R4/ServiceRequest?_id=" + r.id + "&_revinclude=Provenance:target", "_revinclude"},
			{"/fhir/R4/ServiceRequest?_id=not-an-id", "_id"},
			{"/fhir/R4/ServiceRequest?_format=xml", "_format"},
			{"/fhir/R4/ServiceRequest?_lastUpdated=gt2026-01-01T00:00:00Z&_lastUpdated=gt2027-01-01T00:00:00Z", "_lastUpdated"},
			{"/fhir/R4/ServiceRequest?_id=" + r.id + "&_id=" + rooms.NewID(), "_id"},
		} {
			res := r.sc.fhirGet(tc.path)
			code, field := res.outcome()
			if res.status/100 != 4 || field != tc.field || code == "" {
				t.Errorf("GET %s: %d %s; want a 4xx OperationOutcome naming %s", tc.path, res.status, res.raw, tc.field)
			}
		}

		// The _id search: the referral with its workflow, patient and
		// conversation, and nothing for an outsider.
		res := r.rc.do("POST", "/api/referrals/"+r.id+"/messages", map[string]any{"ref": rooms.NewID(), "body": "MRI at 14:00"})
		if res.status != 201 {
			t.Fatalf("post: %d %s", res.status, res.raw)
		}
		q := "/fhir/R4/ServiceRequest?_id=" + r.id + "&_revinclude=Task:focus&_revinclude=Communication:based-on&_include=ServiceRequest:subject"
		got := r.sc.fhirGet(q)
		kinds := map[string]int{}
		for _, en := range got.body["entry"].([]any) {
			kinds[en.(map[string]any)["resource"].(map[string]any)["resourceType"].(string)]++
		}
		if kinds["ServiceRequest"] != 1 || kinds["Task"] != 1 || kinds["Patient"] != 1 || kinds["Communication"] != 1 {
			t.Errorf("_id search holds %v", kinds)
		}
		if got := oc.fhirGet(q); got.status != 200 || got.body["total"] != 0.0 || got.body["entry"] != nil {
			t.Errorf("an outsider's _id search: %d %s", got.status, got.raw)
		}
	})
}

// bearerGet reads a FHIR path with an integrator's token and no cookie.
func (e *env) bearerGet(token, path string) response {
	e.t.Helper()
	c := e.client()
	req, err := http.NewRequest("GET", e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &res.body)
	return res
}

// accessToken registers a client of the admin's organisation with scopes
// and returns its id and a token it got with a signed assertion.
func (e *env) accessToken(t *testing.T, admin *client, scopes ...string) (string, string) {
	t.Helper()
	k := signingKey{kid: "k1", alg: jose.ES384, key: ecKey()}
	id := registerClient(t, admin, scopes, k.publicJWK(t))
	res := e.requestToken(tokenForm(signAssertion(t, k.alg, k.key, k.kid, e.claims(id, rooms.NewID()))))
	token, _ := res.body["access_token"].(string)
	if res.status != 200 || token == "" {
		t.Fatalf("token for %s: %d %s", id, res.status, res.raw)
	}
	return id, token
}

// TestFHIRIntegratorReadsWhatItsOrganisationReceives reads through the
// FHIR API with integrators' bearer tokens: one of the receiving
// organisation reads the referral, its workflow, patient and audit trail;
// one of another organisation reads nothing (404 OperationOutcomes, an
// empty feed); a token without a type's scope is refused it; a revoked
// client's token stops working on its next request.
func TestFHIRIntegratorReadsWhatItsOrganisationReceives(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		_, ret, _ := e.enrolledAdmin("RET")
		_, rbl, _ := e.enrolledAdmin("RBL")
		retID, retToken := e.accessToken(t, ret, "system/*.read", "system/AuditEvent.read")
		rblID, rblToken := e.accessToken(t, rbl, "system/*.read", "system/AuditEvent.read")
		_, wildcard := e.accessToken(t, ret, "system/*.read")
		_, narrow := e.accessToken(t, ret, "system/ServiceRequest.read")
		e.clock.Advance(rooms.ChangeSettle + time.Second)

		// Discovery: where a backend service gets its token.
		if res := e.client().do("GET", "/fhir/R4/.well-known/smart-configuration", nil); res.status != 200 || res.body["token_endpoint"] != e.base+"/oauth/token" {
			t.Errorf("SMART configuration: %d %s", res.status, res.raw)
		}

		for _, typ := range []string{"ServiceRequest", "Task", "Patient", "CarePlan"} {
			path := "/fhir/R4/" + typ + "/" + r.id
			if res := e.bearerGet(retToken, path); res.status != 200 || res.body["resourceType"] != typ {
				t.Errorf("%s with the receiving trust's token: %d %s", path, res.status, res.raw)
			}
			if res := e.bearerGet(rblToken, path); res.status != 404 {
				t.Errorf("%s with another trust's token: %d %s; want 404", path, res.status, res.raw)
			} else if code, _ := res.outcome(); code != "not-found" {
				t.Errorf("%s with another trust's token: %s; want a not-found OperationOutcome", path, res.raw)
			}
		}
		feed := "/fhir/R4/ServiceRequest?_lastUpdated=gt2000-01-01T00:00:00Z"
		if res := e.bearerGet(retToken, feed); res.status != 200 || len(res.body["entry"].([]any)) != 1 {
			t.Errorf("the receiving trust's feed: %d %s; want the referral", res.status, res.raw)
		}
		if res := e.bearerGet(rblToken, feed); res.status != 200 || res.body["entry"] != nil {
			t.Errorf("another trust's feed: %d %s; want none", res.status, res.raw)
		}
		if n := len(e.audit(rooms.AuditFilter{ActorID: rooms.IntegrationPrefix + retID, Event: "referral.view", Outcome: rooms.OutcomeSuccess})); n != 4 {
			t.Errorf("%d referral.view entries for the integrator's 4 reads; want 4", n)
		}
		if n := len(e.audit(rooms.AuditFilter{ActorID: rooms.IntegrationPrefix + rblID, ReferralID: r.id, Outcome: rooms.OutcomeDenied})); n != 4 {
			t.Errorf("%d denied entries for the other trust's 4 reads; want 4", n)
		}

		// The audit trail: the receiving trust's entries, not another's.
		entries := e.audit(rooms.AuditFilter{Organisation: "RET", Limit: 1})
		path := fmt.Sprintf("/fhir/R4/AuditEvent/%d", entries[0].ID)
		if res := e.bearerGet(retToken, path); res.status != 200 || res.body["resourceType"] != "AuditEvent" {
			t.Errorf("%s with the receiving trust's token: %d %s", path, res.status, res.raw)
		}
		if res := e.bearerGet(rblToken, path); res.status != 404 {
			t.Errorf("%s with another trust's token: %d %s; want 404", path, res.status, res.raw)
		}
		// The trail is more than the receiving team sees: a wildcard
		// granted for the referrals does not reach it.
		if res := e.bearerGet(wildcard, path); res.status != 403 {
			t.Errorf("%s with a system/*.read token: %d %s; want 403", path, res.status, res.raw)
		}

		// Scopes: ServiceRequest only.
		if res := e.bearerGet(narrow, "/fhir/R4/ServiceRequest/"+r.id); res.status != 200 {
			t.Errorf("a ServiceRequest-only token reading one: %d %s", res.status, res.raw)
		}
		if res := e.bearerGet(narrow, "/fhir/R4/Patient/"+r.id); res.status != 403 {
			t.Errorf("a ServiceRequest-only token reading a Patient: %d %s; want 403", res.status, res.raw)
		}
		res := e.bearerGet(narrow, "/fhir/R4/ServiceRequest?_id="+r.id+"&_include=ServiceRequest:subject")
		if entries, _ := res.body["entry"].([]any); res.status != 200 || len(entries) != 1 {
			t.Errorf("a ServiceRequest-only token's _id search with the subject: %d %s; want the ServiceRequest alone", res.status, res.raw)
		}

		// Revoked: refused at once, as a token never issued is.
		if res := ret.do("DELETE", "/api/admin/integrations/"+retID, nil); res.status != 200 {
			t.Fatalf("revoke: %d %s", res.status, res.raw)
		}
		for _, token := range []string{retToken, "not-a-token"} {
			res := e.bearerGet(token, "/fhir/R4/ServiceRequest/"+r.id)
			if code, _ := res.outcome(); res.status != 401 || code != "login" || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("a revoked or unknown token: %d %s %v; want 401 login with WWW-Authenticate", res.status, res.raw, res.header)
			}
		}
	})
}

// TestFHIRBadBearerTokensAreThrottledAndTheirAuditBounded sends sixty bad
// bearer tokens at once from one address: fifty are refused and audited,
// ten are throttled (429) with no audit entry, so no one without a token
// grows the audit trail without bound; a good token still reads, since only
// refusals count.
func TestFHIRBadBearerTokensAreThrottledAndTheirAuditBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		_, admin, _ := e.enrolledAdmin("RET")
		_, token := e.accessToken(t, admin, "system/*.read")
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				res := e.bearerGet(fmt.Sprintf("BADTOKEN%d", i), "/fhir/R4/ServiceRequest/"+r.id)
				mu.Lock()
				statuses[res.status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if statuses[401] != 50 || statuses[429] != 10 {
			t.Errorf("60 bad tokens at once: %v; want fifty 401 and ten 429", statuses)
		}
		if n := len(e.audit(rooms.AuditFilter{Event: rooms.EventIntegrationAccess, Outcome: rooms.OutcomeDenied})); n != 50 {
			t.Errorf("%d refused tokens audited; want 50", n)
		}
		if res := e.bearerGet(token, "/fhir/R4/ServiceRequest/"+r.id); res.status != 200 {
			t.Errorf("a good token from the throttled address: %d %s", res.status, res.raw)
		}
	})
}
