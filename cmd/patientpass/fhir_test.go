package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"patientpass/hub/fhir"
	"patientpass/hub/totp"
)

// fhirClient is a logged-in demo user reading the FHIR API.
type fhirClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func demoLogin(t *testing.T, base, email, password, totpSecret string) *fhirClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &fhirClient{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	body := map[string]string{"email": email, "password": password}
	if totpSecret != "" {
		code, err := totp.Code(totpSecret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		body["totp"] = code
	}
	b, _ := json.Marshal(body)
	resp, err := c.http.Post(base+"/api/session", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("log in as %s: %d", email, resp.StatusCode)
	}
	return c
}

// get reads path and returns the status and body.
func (c *fhirClient) get(path string) (int, []byte) {
	c.t.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(path, "/fhir/") && ct != fhir.ContentType {
		c.t.Errorf("GET %s: Content-Type %q; want %q", path, ct, fhir.ContentType)
	}
	return resp.StatusCode, b
}

// r4 checks FHIR R4 JSON with an independent implementation: Google's FHIR
// unmarshaller, which refuses unknown elements, codes outside their value
// sets, missing required elements and malformed primitives.
type r4 struct {
	t *testing.T
	u *jsonformat.Unmarshaller
	// systems counts every identifier system seen in valid resources.
	systems map[string]int
	checked int
}

func newR4(t *testing.T) *r4 {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	return &r4{t: t, u: u, systems: map[string]int{}}
}

// valid checks one resource (a Bundle with its entries) read from what.
func (v *r4) valid(what string, b []byte) map[string]any {
	v.t.Helper()
	if _, err := v.u.Unmarshal(b); err != nil {
		v.t.Errorf("%s is not valid FHIR R4: %v\n%s", what, err, b)
	}
	v.checked++
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		v.t.Fatalf("%s: %v", what, err)
	}
	// R4 forbids empty strings, which the parser lets through.
	if path, ok := emptyString(m, what); ok {
		v.t.Errorf("%s holds an empty string at %s", what, path)
	}
	v.collect(m)
	return m
}

// emptyString finds an empty string value in x, returning its path.
func emptyString(x any, path string) (string, bool) {
	switch x := x.(type) {
	case string:
		return path, x == ""
	case map[string]any:
		for k, val := range x {
			if p, ok := emptyString(val, path+"."+k); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range x {
			if p, ok := emptyString(e, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	}
	return "", false
}

// collect counts the systems of every identifier in x.
func (v *r4) collect(x any) {
	switch x := x.(type) {
	case map[string]any:
		for k, val := range x {
			if k == "identifier" {
				ids, ok := val.([]any)
				if !ok {
					ids = []any{val}
				}
				for _, id := range ids {
					if m, ok := id.(map[string]any); ok {
						s, _ := m["system"].(string)
						v.systems[s]++
					}
				}
			}
			v.collect(val)
		}
	case []any:
		for _, e := range x {
			v.collect(e)
		}
	}
}

// references lists every "Type/id" reference in x of the given types.
func references(x any, types ...string) []string {
	var out []string
	switch x := x.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "reference" {
				if typ, _, ok := strings.Cut(s, "/"); ok && slices.Contains(types, typ) {
					out = append(out, s)
				}
			}
			out = append(out, references(val, types...)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, references(e, types...)...)
		}
	}
	return out
}

// TestFHIRResourcesOfTheDemoPassAnR4Validator reads every resource the FHIR
// API returns for each demo referral — the referral, its workflow, patient,
// plan, messages, the people and organisations they reference, audit
// events, the searches and the errors — and checks each with an R4
// validator, and that identifiers use exactly SPEC §10's systems.
func TestFHIRResourcesOfTheDemoPassAnR4Validator(t *testing.T) {
	const password, secret = "demo password for the FHIR test", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	env := map[string]string{"PATIENTPASS_DATA_DIR": t.TempDir(),
		"PATIENTPASS_DEMO_PASSWORD": password, "PATIENTPASS_DEMO_TOTP_SECRET": secret}
	n := startNode(t, env, "--demo")
	v := newR4(t)

	status, body := (&fhirClient{t: t, base: n.base, http: http.DefaultClient}).get("/fhir/R4/metadata")
	if status != http.StatusOK {
		t.Fatalf("metadata: %d %s", status, body)
	}
	v.valid("CapabilityStatement", body)

	specialist := demoLogin(t, n.base, "specialist@demo.test", password, "")
	referrer := demoLogin(t, n.base, "referrer@demo.test", password, "")
	ids := map[string]*fhirClient{}
	for _, c := range []*fhirClient{referrer, specialist} {
		status, body := c.get("/api/referrals")
		var list struct {
			Referrals []struct {
				ID string `json:"id"`
			} `json:"referrals"`
		}
		if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil {
			t.Fatalf("list referrals: %d %v %s", status, err, body)
		}
		for _, r := range list.Referrals {
			ids[r.ID] = c
		}
	}
	if len(ids) < 10 {
		t.Fatalf("%d demo referrals visible; want the demo day", len(ids))
	}

	seen := map[string]bool{}
	messages := 0
	for id, c := range ids {
		for _, typ := range []string{"ServiceRequest", "Task", "Patient", "CarePlan"} {
			status, body := c.get("/fhir/R4/" + typ + "/" + id)
			if status != http.StatusOK {
				t.Fatalf("%s/%s: %d %s", typ, id, status, body)
			}
			m := v.valid(typ+"/"+id, body)
			if m["resourceType"] != typ || m["id"] != id {
				t.Errorf("%s/%s came back as %v/%v", typ, id, m["resourceType"], m["id"])
			}
			for _, ref := range references(m, "Practitioner", "Organization") {
				seen[ref] = true
			}
		}
		q := "/fhir/R4/ServiceRequest?_id=" + id + "&_revinclude=Task:focus&_revinclude=Communication:based-on&_include=ServiceRequest:subject"
		status, body := c.get(q)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", q, status, body)
		}
		b := v.valid("searchset of "+id, body)
		entries, _ := b["entry"].([]any)
		kinds := map[string]int{}
		for _, e := range entries {
			res := e.(map[string]any)["resource"].(map[string]any)
			kinds[res["resourceType"].(string)]++
			if res["resourceType"] == "Communication" {
				// Each included Communication reads on its own too.
				cid := res["id"].(string)
				status, body := c.get("/fhir/R4/Communication/" + cid)
				if status != http.StatusOK {
					t.Fatalf("Communication/%s: %d %s", cid, status, body)
				}
				for _, ref := range references(v.valid("Communication/"+cid, body), "Practitioner", "Organization") {
					seen[ref] = true
				}
			}
		}
		if kinds["ServiceRequest"] != 1 || kinds["Task"] != 1 || kinds["Patient"] != 1 {
			t.Errorf("searchset of %s holds %v; want one ServiceRequest, Task and Patient", id, kinds)
		}
		messages += kinds["Communication"]
	}
	if messages == 0 {
		t.Fatal("no demo referral has a message")
	}
	for ref := range seen {
		status, body := specialist.get("/fhir/R4/" + ref)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", ref, status, body)
		}
		v.valid(ref, body)
	}

	// The sync feed's first page.
	status, body = specialist.get("/fhir/R4/ServiceRequest?_lastUpdated=gt2000-01-01T00:00:00Z&_count=5")
	if status != http.StatusOK {
		t.Fatalf("_lastUpdated search: %d %s", status, body)
	}
	v.valid("the sync feed", body)

	// Audit events, as the admin.
	admin := demoLogin(t, n.base, "admin@demo.test", password, secret)
	status, body = admin.get("/api/admin/audit?limit=20")
	var trail struct {
		Entries []struct {
			ID int64 `json:"id"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &trail); status != http.StatusOK || err != nil || len(trail.Entries) == 0 {
		t.Fatalf("audit trail: %d %v %s", status, err, body)
	}
	for _, e := range trail.Entries {
		status, body := admin.get(fmt.Sprintf("/fhir/R4/AuditEvent/%d", e.ID))
		if status != http.StatusOK {
			t.Fatalf("AuditEvent/%d: %d %s", e.ID, status, body)
		}
		v.valid(fmt.Sprintf("AuditEvent/%d", e.ID), body)
	}

	// Errors are OperationOutcomes: what another organisation's clinician
	// may not see is not found, as what does not exist; a non-admin reads
	// no audit event; a bad search parameter is named.
	outsider := demoLogin(t, n.base, "outsider@demo.test", password, "")
	var someID string
	for id := range ids {
		someID = id
		break
	}
	for _, tc := range []struct {
		c      *fhirClient
		path   string
		status int
	}{
		{outsider, "/fhir/R4/ServiceRequest/" + someID, http.StatusNotFound},
		{outsider, "/fhir/R4/Patient/" + someID, http.StatusNotFound},
		{specialist, "/fhir/R4/ServiceRequest/00000000-0000-4000-8000-000000000000", http.StatusNotFound},
		{specialist, fmt.Sprintf("/fhir/R4/AuditEvent/%d", trail.Entries[0].ID), http.StatusForbidden},
		{specialist, "/fhir/R4/ServiceRequest?_lastUpdated=lt2026-01-01T00:00:00Z", http.StatusBadRequest},
		{specialist, "/fhir/R4/Observation/1", http.StatusNotFound},
		{&fhirClient{t: t, base: n.base, http: http.DefaultClient}, "/fhir/R4/ServiceRequest/" + someID, http.StatusUnauthorized},
	} {
		status, body := tc.c.get(tc.path)
		if status != tc.status {
			t.Errorf("GET %s: %d; want %d (%s)", tc.path, status, tc.status, body)
		}
		if m := v.valid("the outcome of "+tc.path, body); m["resourceType"] != "OperationOutcome" {
			t.Errorf("GET %s answered a %v; want an OperationOutcome", tc.path, m["resourceType"])
		}
	}
	status, body = outsider.get("/fhir/R4/ServiceRequest?_id=" + someID + "&_revinclude=Task:focus")
	if m := v.valid("the outsider's search", body); status != http.StatusOK || m["total"] != 0.0 || m["entry"] != nil {
		t.Errorf("an outsider's _id search: %d %s; want an empty searchset", status, body)
	}

	allowed := []string{fhir.SystemNHSNumber, fhir.SystemODS, fhir.SystemGMC, fhir.SystemNMC, fhir.SystemHCPC}
	for system, count := range v.systems {
		if !slices.Contains(allowed, system) {
			t.Errorf("%d identifiers use system %q; SPEC §10 allows only %v", count, system, allowed)
		}
	}
	for _, want := range []string{fhir.SystemNHSNumber, fhir.SystemODS, fhir.SystemGMC, fhir.SystemNMC} {
		if v.systems[want] == 0 {
			t.Errorf("no resource carries an identifier of %s", want)
		}
	}
	t.Logf("%d resources valid across %d demo referrals (%d messages, %d people and organisations); identifier systems %v",
		v.checked, len(ids), messages, len(seen), v.systems)
}
