package api

import (
	"net/http"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// pathways lists the pathways with their forms, plan sections, bed types
// and triage policies: what a client renders a referral form from.
func (a *API) pathways(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	ps, err := a.svc.Pathways(r.Context(), c)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"pathways": ps})
}
