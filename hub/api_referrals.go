package hub

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"patientpass/rooms"
)

// The referral API of SPEC §5. Every handler goes through rooms.Service,
// which validates, authorises and audits; handlers only translate.

func (s *Server) pathways(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	ps, err := s.store.Pathways(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pathways": ps})
}

func (s *Server) listReferrals(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	q := r.URL.Query()
	f := rooms.ReferralFilter{PathwayID: q.Get("pathway")}
	if v := q.Get("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			status := rooms.Status(strings.TrimSpace(st))
			if !validStatus(status) {
				writeError(w, rooms.Invalid("status", "%q is not a referral status", st))
				return
			}
			f.Status = append(f.Status, status)
		}
	}
	if v := q.Get("priority"); v != "" {
		p, err := rooms.ParsePriority("priority", v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		f.Priority = p
	}
	rs, err := s.svc.Referrals(r.Context(), c, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rs == nil {
		rs = []rooms.Referral{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"referrals": rs})
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

func (s *Server) createReferral(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req createReferralRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ref, err := s.svc.CreateReferral(r.Context(), c, rooms.NewReferral{
		Ref: req.Ref, PathwayID: req.Pathway, Priority: req.Priority, Submit: req.Submit,
		Patient: req.Patient, Form: req.Form, ContactPhone: req.ContactPhone,
		ConsultantDiscussed: req.ConsultantDiscussed,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ref)
}

// referralView is a referral as its reader sees it: with how far they have
// read.
type referralView struct {
	rooms.Referral
	ReadSeq int64 `json:"read_seq"`
}

func (s *Server) getReferral(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	ref, err := s.svc.Referral(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	read, err := s.store.ReadMarker(r.Context(), ref.ID, c.User.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, referralView{Referral: ref, ReadSeq: read})
}

// Event pages are bounded so one request cannot read a whole long room.
const (
	defaultEventPage = 500
	maxEventPage     = 1000
)

func (s *Server) referralEvents(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	after, err := queryInt(r, "after", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := queryInt(r, "limit", defaultEventPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if limit < 1 || limit > maxEventPage {
		writeError(w, rooms.Invalid("limit", "limit must be between 1 and %d", maxEventPage))
		return
	}
	events, head, err := s.svc.Events(r.Context(), c, r.PathValue("id"), after, int(limit))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if events == nil {
		events = []rooms.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "head": head})
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

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req messageRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.svc.PostMessage(r.Context(), c, rooms.PostMessage{Ref: req.Ref, ReferralID: r.PathValue("id"), Body: req.Body})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, eventAnswer{Seq: e.Seq, Event: e})
}

type planRequest struct {
	Ref          string `json:"ref"`
	BaseRevision *int64 `json:"base_revision"`
	Text         string `json:"text"`
}

func (s *Server) editPlan(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req planRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.BaseRevision == nil {
		writeError(w, rooms.Invalid("base_revision", "base_revision is required: the revision your edit is based on (0 for a section never edited)"))
		return
	}
	e, err := s.svc.EditPlan(r.Context(), c, rooms.EditPlan{
		Ref: req.Ref, ReferralID: r.PathValue("id"), Section: r.PathValue("section"),
		BaseRevision: *req.BaseRevision, Text: req.Text,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body rooms.PlanEditBody
	if err := json.Unmarshal(e.Body, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": e.Seq, "revision": body.Revision, "event": e})
}

type transitionRequest struct {
	Ref     string         `json:"ref"`
	To      rooms.Status   `json:"to"`
	Reason  string         `json:"reason"`
	Outcome map[string]any `json:"outcome"`
}

func (s *Server) transition(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req transitionRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.svc.Transition(r.Context(), c, rooms.Transition{
		Ref: req.Ref, ReferralID: r.PathValue("id"), To: req.To, Reason: req.Reason, Outcome: req.Outcome,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body rooms.TransitionBody
	if err := json.Unmarshal(e.Body, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": e.Seq, "status": body.To, "event": e})
}

type participantRequest struct {
	Ref    string `json:"ref"`
	UserID string `json:"user_id"`
}

func (s *Server) addParticipant(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req participantRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.svc.AddParticipant(r.Context(), c, rooms.AddParticipant{Ref: req.Ref, ReferralID: r.PathValue("id"), UserID: req.UserID})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, eventAnswer{Seq: e.Seq, Event: e})
}

type assignRequest struct {
	Ref        string `json:"ref"`
	AssigneeID string `json:"assignee_id"`
}

func (s *Server) assign(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req assignRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.svc.Assign(r.Context(), c, rooms.Assign{Ref: req.Ref, ReferralID: r.PathValue("id"), AssigneeID: req.AssigneeID})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, eventAnswer{Seq: e.Seq, Event: e})
}

type readRequest struct {
	Seq *int64 `json:"seq"`
}

func (s *Server) markRead(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req readRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Seq == nil {
		writeError(w, rooms.Invalid("seq", "seq is required: the last event you have read"))
		return
	}
	if err := s.svc.MarkRead(r.Context(), c, r.PathValue("id"), *req.Seq); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
