package api

import (
	"encoding/json"
	"net/http"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// Integrator clients (SPEC §10): an admin registers a hospital system's
// public keys and scopes, lists the organisation's clients and revokes
// them. The client then gets tokens at /oauth/token (package auth).

type integrationRequest struct {
	Name   string          `json:"name"`
	JWKS   json.RawMessage `json:"jwks"`
	Scopes []string        `json:"scopes"`
}

func (a *API) registerIntegration(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req integrationRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	in, err := a.svc.RegisterIntegration(r.Context(), c, rooms.NewIntegration{Name: req.Name, JWKS: req.JWKS, Scopes: req.Scopes})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, map[string]any{"client_id": in.ClientID, "integration": in})
}

func (a *API) listIntegrations(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	ins, err := a.svc.Integrations(r.Context(), c)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"integrations": ins})
}

func (a *API) revokeIntegration(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	in, err := a.svc.RevokeIntegration(r.Context(), c, r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"integration": in})
}
