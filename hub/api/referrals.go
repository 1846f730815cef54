package api

// The referral API of SPEC §5. Every handler goes through rooms.Service,
// which validates, authorises and audits; handlers only translate.

import (
	"net/http"
	"strconv"
	"strings"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

func (a *API) listReferrals(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	q := r.URL.Query()
	f := rooms.ReferralFilter{PathwayID: q.Get("pathway")}
	if f.PathwayID != "" && !isKey(f.PathwayID) {
		httpjson.Fail(w, r, rooms.Invalid("pathway", "%q is not a pathway", httpjson.Printable(f.PathwayID, 64)))
		return
	}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			status := rooms.Status(strings.TrimSpace(st))
			if !validStatus(status) {
				httpjson.Error(w, rooms.Invalid("status", "%q is not a referral status", st))
				return
			}
			f.Status = append(f.Status, status)
		}
	}
	if v := q.Get("priority"); v != "" {
		p, err := rooms.ParsePriority("priority", v)
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		f.Priority = p
	}
	rs, err := a.svc.Referrals(r.Context(), c, f)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if rs == nil {
		rs = []rooms.Referral{}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"referrals": rs})
}

// isKey reports whether s can name a pathway: a short name of ASCII
// letters, digits, '-' and '_' (what the store may be asked for; NUL or
// invalid UTF-8 would be refused by Postgres as a failure of ours).
func isKey(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validStatus(st rooms.Status) bool {
	for _, s := range rooms.Statuses {
		if s == st {
			return true
		}
	}
	return false
}

type createReferralRequest struct {
	Ref                 string         `json:"ref"`
	Pathway             string         `json:"pathway"`
	Priority            rooms.Priority `json:"priority"`
	Submit              bool           `json:"submit"`
	Patient             rooms.Patient  `json:"patient"`
	Form                map[string]any `json:"form"`
	ContactPhone        string         `json:"contact_phone"`
	ConsultantDiscussed bool           `json:"consultant_discussed"`
}

func (a *API) createReferral(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req createReferralRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	ref, err := a.svc.CreateReferral(r.Context(), c, rooms.NewReferral{
		Ref: req.Ref, PathwayID: req.Pathway, Priority: req.Priority, Submit: req.Submit,
		Patient: req.Patient, Form: req.Form, ContactPhone: req.ContactPhone,
		ConsultantDiscussed: req.ConsultantDiscussed,
	})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, ref)
}

// referralView is a referral as its reader sees it: with how far they have
// read.
type referralView struct {
	rooms.Referral
	ReadSeq int64 `json:"read_seq"`
}

func (a *API) getReferral(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	ref, err := a.svc.Referral(r.Context(), c, r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	read, err := a.svc.ReadMarker(r.Context(), c, ref.ID)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, referralView{Referral: ref, ReadSeq: read})
}

// Event pages are bounded so one request cannot read a whole long room.
const (
	defaultEventPage = 500
	maxEventPage     = 1000
)

func (a *API) referralEvents(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	after, err := queryInt(r, "after", 0)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	limit, err := queryInt(r, "limit", defaultEventPage)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if limit < 1 || limit > maxEventPage {
		httpjson.Error(w, rooms.Invalid("limit", "limit must be between 1 and %d", maxEventPage))
		return
	}
	events, head, err := a.svc.Events(r.Context(), c, r.PathValue("id"), after, int(limit))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if events == nil {
		events = []rooms.Event{}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"events": events, "head": head})
}

func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, rooms.Invalid(name, "%s must be a whole number", name)
	}
	return n, nil
}

type messageRequest struct {
	Ref  string `json:"ref"`
	Body string `json:"body"`
}

// eventAnswer is the answer to a command that appended an event.
type eventAnswer struct {
	Seq   int64       `json:"seq"`
	Event rooms.Event `json:"event"`
}

func (a *API) postMessage(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req messageRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	e, err := a.svc.PostMessage(r.Context(), c, rooms.PostMessage{Ref: req.Ref, ReferralID: r.PathValue("id"), Body: req.Body})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, eventAnswer{Seq: e.Seq, Event: e})
}

type planRequest struct {
	Ref          string `json:"ref"`
	BaseRevision *int64 `json:"base_revision"`
	Text         string `json:"text"`
}

func (a *API) editPlan(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req planRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if req.BaseRevision == nil {
		httpjson.Error(w, rooms.Invalid("base_revision", "base_revision is required: the revision your edit is based on (0 for a section never edited)"))
		return
	}
	e, revision, err := a.svc.EditPlan(r.Context(), c, rooms.EditPlan{
		Ref: req.Ref, ReferralID: r.PathValue("id"), Section: r.PathValue("section"),
		BaseRevision: *req.BaseRevision, Text: req.Text,
	})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, planAnswer{Seq: e.Seq, Revision: revision, Event: e})
}

// planAnswer is the answer to a plan edit.
type planAnswer struct {
	Seq      int64       `json:"seq"`
	Revision int64       `json:"revision"`
	Event    rooms.Event `json:"event"`
}

type transitionRequest struct {
	Ref     string         `json:"ref"`
	To      rooms.Status   `json:"to"`
	Reason  string         `json:"reason"`
	Outcome map[string]any `json:"outcome"`
}

func (a *API) transition(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req transitionRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	e, status, err := a.svc.Transition(r.Context(), c, rooms.Transition{
		Ref: req.Ref, ReferralID: r.PathValue("id"), To: req.To, Reason: req.Reason, Outcome: req.Outcome,
	})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, transitionAnswer{Seq: e.Seq, Status: status, Event: e})
}

// transitionAnswer is the answer to a transition.
type transitionAnswer struct {
	Seq    int64        `json:"seq"`
	Status rooms.Status `json:"status"`
	Event  rooms.Event  `json:"event"`
}

type participantRequest struct {
	Ref    string `json:"ref"`
	UserID string `json:"user_id"`
}

func (a *API) addParticipant(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req participantRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	e, err := a.svc.AddParticipant(r.Context(), c, rooms.AddParticipant{Ref: req.Ref, ReferralID: r.PathValue("id"), UserID: req.UserID})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, eventAnswer{Seq: e.Seq, Event: e})
}

type assignRequest struct {
	Ref        string `json:"ref"`
	AssigneeID string `json:"assignee_id"`
}

func (a *API) assign(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req assignRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	e, err := a.svc.Assign(r.Context(), c, rooms.Assign{Ref: req.Ref, ReferralID: r.PathValue("id"), AssigneeID: req.AssigneeID})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, eventAnswer{Seq: e.Seq, Event: e})
}

type readRequest struct {
	Seq *int64 `json:"seq"`
}

func (a *API) markRead(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req readRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if req.Seq == nil {
		httpjson.Error(w, rooms.Invalid("seq", "seq is required: the last event you have read"))
		return
	}
	if err := a.svc.MarkRead(r.Context(), c, r.PathValue("id"), *req.Seq); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
