package fhir

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// The searches of SPEC §10, on ServiceRequest only:
//
//   - ServiceRequest?_lastUpdated=gt<instant>&_count=N — a sync feed:
//     the referrals changed after the instant, oldest change first, each
//     once per change; the next link carries the cursor (_page) of the
//     page's last entry, so a change made while a client pages moves that
//     referral to a later page rather than being skipped or repeated;
//   - ServiceRequest?_id=<id> with _revinclude=Task:focus,
//     _revinclude=Communication:based-on and _include=ServiceRequest:subject
//     — a referral with its workflow, conversation and patient.

var searchParams = []string{"_lastUpdated", "_count", "_page", "_id", "_include", "_revinclude", "_format"}

// search serves GET /fhir/R4/{type}?…
func (a *API) search(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	typ := r.PathValue("type")
	if typ != "ServiceRequest" {
		if _, ok := a.readers()[typ]; !ok {
			writeOutcome(w, http.StatusNotFound, fhir.IssueTypeNotSupported, "this server does not serve that resource type", "")
			return
		}
		writeOutcome(w, http.StatusBadRequest, fhir.IssueTypeNotSupported, "search is supported on ServiceRequest only; read "+typ+" by id", "")
		return
	}
	if err := a.allowed(r, c, typ); err != nil {
		fail(w, r, err)
		return
	}
	q := r.URL.Query()
	for name, values := range q {
		if !slices.Contains(searchParams, name) {
			fail(w, r, rooms.Invalid(httpjson.Printable(name, 40), "%s is not a search parameter this server supports (%s)",
				httpjson.Printable(name, 40), strings.Join(searchParams, ", ")))
			return
		}
		if len(values) > 1 && name != "_include" && name != "_revinclude" {
			fail(w, r, rooms.Invalid(name, "%s is given more than once", name))
			return
		}
	}
	var (
		b   fhir.Bundle
		err error
	)
	if q.Has("_id") {
		b, err = a.searchByID(r, c, q)
	} else {
		b, err = a.searchChanges(r, c, q)
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	write(w, http.StatusOK, b)
}

func searchset(self string) fhir.Bundle {
	return fhir.Bundle{Type: fhir.BundleTypeSearchset, Link: []fhir.BundleLink{{Relation: "self", Url: self}}}
}

func (a *API) entry(typ, id string, resource any, mode fhir.SearchEntryMode) (fhir.BundleEntry, error) {
	b, ok := resource.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(resource); err != nil {
			return fhir.BundleEntry{}, err
		}
	}
	return fhir.BundleEntry{FullUrl: a.fullURL(typ, id), Resource: b, Search: &fhir.BundleEntrySearch{Mode: &mode}}, nil
}

// searchChanges is the sync feed.
func (a *API) searchChanges(r *http.Request, c rooms.Caller, q url.Values) (fhir.Bundle, error) {
	if q.Has("_include") || q.Has("_revinclude") {
		return fhir.Bundle{}, rooms.Invalid("_include", "_include and _revinclude go with _id")
	}
	count := defaultCount
	if s := q.Get("_count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > rooms.MaxChangesPage {
			return fhir.Bundle{}, rooms.Invalid("_count", "_count must be a number from 1 to %d", rooms.MaxChangesPage)
		}
		count = n
	}
	var since time.Time
	if s := q.Get("_lastUpdated"); s != "" {
		v, ok := strings.CutPrefix(s, "gt")
		t, err := time.Parse(time.RFC3339Nano, v)
		if !ok || err != nil {
			return fhir.Bundle{}, rooms.Invalid("_lastUpdated", "_lastUpdated must be gt and an instant, such as gt2026-12-01T09:00:00Z")
		}
		since = t
	}
	var after *rooms.ChangeCursor
	if s := q.Get("_page"); s != "" {
		cur, ok := parseCursor(s)
		if !ok {
			return fhir.Bundle{}, rooms.Invalid("_page", "_page is not a cursor this server gave")
		}
		after = &cur
	}
	rs, err := a.cfg.Service.ReferralChanges(r.Context(), c, since, after, count)
	if err != nil {
		return fhir.Bundle{}, err
	}
	self := url.Values{"_count": {strconv.Itoa(count)}}
	for _, k := range []string{"_lastUpdated", "_page"} {
		if v := q.Get(k); v != "" {
			self.Set(k, v)
		}
	}
	b := searchset(a.link("ServiceRequest", self))
	pathways := map[string]rooms.Pathway{}
	for _, ref := range rs {
		pw, ok := pathways[ref.PathwayID]
		if !ok {
			if pw, err = a.cfg.Service.PathwayOf(r.Context(), ref); err != nil {
				return fhir.Bundle{}, err
			}
			pathways[pw.ID] = pw
		}
		e, err := a.entry("ServiceRequest", ref.ID, ServiceRequest(ref, pw), fhir.SearchEntryModeMatch)
		if err != nil {
			return fhir.Bundle{}, err
		}
		b.Entry = append(b.Entry, e)
	}
	if len(rs) == count {
		last := rs[len(rs)-1]
		next := url.Values{"_count": {strconv.Itoa(count)}, "_page": {formatCursor(rooms.ChangeCursor{UpdatedAt: last.UpdatedAt, ID: last.ID})}}
		b.Link = append(b.Link, fhir.BundleLink{Relation: "next", Url: a.link("ServiceRequest", next)})
	}
	return b, nil
}

// A cursor is "<updated, Unix microseconds>_<referral id>".
func formatCursor(c rooms.ChangeCursor) string {
	return strconv.FormatInt(c.UpdatedAt.UnixMicro(), 10) + "_" + c.ID
}

func parseCursor(s string) (rooms.ChangeCursor, bool) {
	micros, id, ok := strings.Cut(s, "_")
	n, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || n < 0 || rooms.CheckID("_page", id) != nil {
		return rooms.ChangeCursor{}, false
	}
	return rooms.ChangeCursor{UpdatedAt: time.UnixMicro(n).UTC(), ID: id}, true
}

// searchByID is a referral with what _include and _revinclude ask for. A
// referral the caller may not see is no match, exactly as one that does
// not exist.
func (a *API) searchByID(r *http.Request, c rooms.Caller, q url.Values) (fhir.Bundle, error) {
	if q.Has("_lastUpdated") || q.Has("_page") {
		return fhir.Bundle{}, rooms.Invalid("_id", "_id cannot be combined with _lastUpdated or _page")
	}
	id := q.Get("_id")
	if err := rooms.CheckID("_id", id); err != nil {
		return fhir.Bundle{}, err
	}
	var task, comms, subject bool
	for _, v := range q["_revinclude"] {
		switch v {
		case "Task:focus":
			task = true
		case "Communication:based-on":
			comms = true
		default:
			return fhir.Bundle{}, rooms.Invalid("_revinclude", "_revinclude must be Task:focus or Communication:based-on")
		}
	}
	for _, v := range q["_include"] {
		if v != "ServiceRequest:subject" {
			return fhir.Bundle{}, rooms.Invalid("_include", "_include must be ServiceRequest:subject")
		}
		subject = true
	}
	self := url.Values{"_id": {id}}
	for _, k := range []string{"_include", "_revinclude"} {
		if q.Has(k) {
			self[k] = q[k]
		}
	}
	b := searchset(a.link("ServiceRequest", self))
	b.Total = new(0)
	ref, err := a.cfg.Service.Referral(r.Context(), c, id)
	if rooms.CodeOf(err) == rooms.CodeNotFound {
		return b, nil
	}
	if err != nil {
		return fhir.Bundle{}, err
	}
	pw, err := a.cfg.Service.PathwayOf(r.Context(), ref)
	if err != nil {
		return fhir.Bundle{}, err
	}
	*b.Total = 1
	add := func(typ, id string, resource any, mode fhir.SearchEntryMode) error {
		e, err := a.entry(typ, id, resource, mode)
		b.Entry = append(b.Entry, e)
		return err
	}
	if err := add("ServiceRequest", ref.ID, ServiceRequest(ref, pw), fhir.SearchEntryModeMatch); err != nil {
		return fhir.Bundle{}, err
	}
	if subject && c.Allows("Patient") {
		if err := add("Patient", ref.ID, Patient(ref), fhir.SearchEntryModeInclude); err != nil {
			return fhir.Bundle{}, err
		}
	}
	if task && c.Allows("Task") {
		if err := add("Task", ref.ID, Task(ref), fhir.SearchEntryModeInclude); err != nil {
			return fhir.Bundle{}, err
		}
	}
	if comms && c.Allows("Communication") {
		messages, complete, err := a.messages(r, c, ref)
		if err != nil {
			return fhir.Bundle{}, err
		}
		for _, e := range messages {
			res, err := Communication(ref, e)
			if err != nil {
				return fhir.Bundle{}, err
			}
			if err := add("Communication", CommunicationID(ref.ID, e.Seq), res, fhir.SearchEntryModeInclude); err != nil {
				return fhir.Bundle{}, err
			}
		}
		if !complete {
			oo := Outcome(fhir.IssueTypeTooCostly, "only the first "+strconv.Itoa(len(messages))+
				" messages are included; read the rest as Communication/<referral>-<seq>", "_revinclude")
			oo.Issue[0].Severity = fhir.IssueSeverityWarning
			if err := add("OperationOutcome", "truncated", oo, fhir.SearchEntryModeOutcome); err != nil {
				return fhir.Bundle{}, err
			}
			b.Entry[len(b.Entry)-1].FullUrl = nil
		}
	}
	return b, nil
}

// messages reads up to maxIncluded messages of the referral, oldest first,
// in at most maxEventPages pages of its events; complete is false when
// there were more.
func (a *API) messages(r *http.Request, c rooms.Caller, ref rooms.Referral) (messages []rooms.Event, complete bool, err error) {
	var after int64
	for page := 0; ; page++ {
		if page == maxEventPages {
			return messages, false, nil
		}
		events, head, err := a.cfg.Service.Events(r.Context(), c, ref.ID, after, eventsPage)
		if err != nil {
			return nil, false, err
		}
		for _, e := range events {
			if e.Kind != rooms.EventMessage {
				continue
			}
			if len(messages) == maxIncluded {
				return messages, false, nil
			}
			messages = append(messages, e)
		}
		if len(events) == 0 || events[len(events)-1].Seq >= head {
			return messages, true, nil
		}
		after = events[len(events)-1].Seq
	}
}
