package api

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// The workflow's routes (SPEC §9): notifications, the triage board, the
// wallboard and its OPEL level, system notices, displays and the audit
// trail.

func (a *API) notifications(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	q := r.URL.Query()
	unread := false
	switch q.Get("unread") {
	case "", "false":
	case "true":
		unread = true
	default:
		httpjson.Error(w, rooms.Invalid("unread", "unread must be true or false"))
		return
	}
	limit, err := queryInt(r, "limit", 0)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	ns, count, err := a.svc.Notifications(r.Context(), c, unread, int(limit))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if ns == nil {
		ns = []rooms.Notification{}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"notifications": ns, "unread": count})
}

type notificationsReadRequest struct {
	UpTo string   `json:"up_to"`
	IDs  []string `json:"ids"`
}

func (a *API) readNotifications(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req notificationsReadRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	unread, err := a.svc.MarkNotificationsRead(r.Context(), c, req.UpTo, req.IDs)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"unread": unread})
}

func (a *API) board(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	pathway := r.URL.Query().Get("pathway")
	if pathway != "" && !isKey(pathway) {
		httpjson.Fail(w, r, rooms.Invalid("pathway", "%q is not a pathway", httpjson.Printable(pathway, 64)))
		return
	}
	if err := a.svc.AuthorizeBoard(r.Context(), c, pathway, "board.view"); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	b, err := a.svc.Board(r.Context(), c, pathway)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, b)
}

func (a *API) wallboard(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	if err := a.svc.AuthorizeWallboard(r.Context(), c, "wallboard.view"); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	wb, err := a.svc.Wallboard(r.Context(), c)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, wb)
}

type opelRequest struct {
	Level *int   `json:"level"`
	Note  string `json:"note"`
}

func (a *API) setOPEL(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req opelRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if req.Level == nil {
		httpjson.Error(w, rooms.Invalid("level", "level is required: 1, 2, 3 or 4"))
		return
	}
	o, err := a.svc.SetOPEL(r.Context(), c, *req.Level, req.Note)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"opel": o})
}

func (a *API) systemStatus(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	n, err := a.svc.Notice(r.Context(), c)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"notice": n})
}

type noticeRequest struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

func (a *API) postNotice(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req noticeRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	n, err := a.svc.PostNotice(r.Context(), c, req.Level, req.Message)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, map[string]any{"notice": n})
}

func (a *API) clearNotice(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	if err := a.svc.ClearNotice(r.Context(), c); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type displayRequest struct {
	Name string `json:"name"`
}

func (a *API) createDisplay(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req displayRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	d, token, err := a.svc.CreateDisplay(r.Context(), c, req.Name)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, map[string]any{"id": d.ID, "token": token, "url": "/display?token=" + token, "display": d})
}

func (a *API) listDisplays(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	ds, err := a.svc.Displays(r.Context(), c)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"displays": ds})
}

func (a *API) revokeDisplay(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	d, err := a.svc.RevokeDisplay(r.Context(), c, r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	a.ender.EndSessions("", rooms.DisplayPrefix+d.ID)
	httpjson.Write(w, http.StatusOK, map[string]any{"display": d})
}

// maxAuditExport bounds one CSV export: a larger trail is exported in
// windows of time (from, to).
const maxAuditExport = 100_000

func (a *API) auditTrail(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 0)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	query := rooms.AuditQuery{UserID: q.Get("user"), ReferralID: q.Get("referral"), Action: rooms.AuditAction(q.Get("action")),
		Outcome: q.Get("outcome"), From: q.Get("from"), To: q.Get("to"), Cursor: q.Get("cursor"), Limit: int(limit)}
	for _, name := range []string{"user", "referral", "action", "outcome", "from", "to", "cursor"} {
		if v := q.Get(name); v != httpjson.Printable(v, 200) {
			httpjson.Error(w, rooms.Invalid(name, "%s contains characters that are not text", name))
			return
		}
	}
	if wantsCSV(r) {
		a.auditCSV(w, r, c, query)
		return
	}
	page, err := a.svc.AuditTrail(r.Context(), c, query)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, page)
}

func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, _ := strings.Cut(strings.TrimSpace(part), ";"); strings.EqualFold(mt, "text/csv") {
			return true
		}
	}
	return false
}

var auditCSVHeader = []string{"id", "at", "actor_id", "actor_registration", "actor_role", "action", "event",
	"referral_id", "patient_nhs_number", "outcome", "detail", "node", "client_addr", "chain", "seq", "prev_hash", "hash"}

// auditCSV streams the trail as CSV, page after page, newest first. The
// first page is read before anything is written, so a refusal is still a
// JSON error.
func (a *API) auditCSV(w http.ResponseWriter, r *http.Request, c rooms.Caller, q rooms.AuditQuery) {
	q.Limit = rooms.MaxAuditPage
	page, err := a.svc.AuditTrail(r.Context(), c, q)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit-`+time.Now().UTC().Format("20060102T150405Z")+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(auditCSVHeader)
	for written := 0; ; {
		for _, e := range page.Entries {
			_ = cw.Write([]string{strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), csvSafe(e.ActorID),
				csvSafe(e.ActorRegistration), string(e.ActorRole), string(e.Action), csvSafe(e.Event), e.ReferralID,
				e.PatientNHSNumber, e.Outcome, csvSafe(e.Detail), csvSafe(e.Node), csvSafe(e.ClientAddr),
				strconv.Itoa(e.Chain), strconv.FormatInt(e.Seq, 10), e.PrevHash, e.Hash})
		}
		written += len(page.Entries)
		if page.Next != "" && written >= maxAuditExport {
			// An export that stops short says so in its last row, with the
			// cursor to go on from.
			_ = cw.Write(incompleteRow(fmt.Sprintf("export stopped after %d entries; continue with cursor=%s", written, page.Next)))
		}
		cw.Flush()
		if page.Next == "" || written >= maxAuditExport || cw.Error() != nil {
			return
		}
		q.Cursor = page.Next
		if page, err = a.svc.AuditTrail(r.Context(), c, q); err != nil {
			zerolog.Ctx(r.Context()).Error().Err(err).Msg("audit export failed part way")
			_ = cw.Write(incompleteRow("export failed part way; continue with cursor=" + q.Cursor))
			cw.Flush()
			return
		}
	}
}

// incompleteRow is the last row of an export that did not finish: "INCOMPLETE"
// in the id column and why in the detail column.
func incompleteRow(why string) []string {
	row := make([]string, len(auditCSVHeader))
	row[0] = "INCOMPLETE"
	row[10] = why
	return row
}

// csvSafe keeps a spreadsheet from taking a cell for a formula: a cell
// starting with = + - @ is prefixed with a quote (OWASP CSV injection).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
