package api

import (
	"context"
	"net/http"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// adminUsers lists the accounts of the admin's organisation, filtered by
// ?status= (pending, active, suspended).
func (a *API) adminUsers(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	us, err := a.svc.Users(r.Context(), c, rooms.UserStatus(r.URL.Query().Get("status")))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if us == nil {
		us = []rooms.User{}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"users": us})
}

// adminApprove activates a pending account.
func (a *API) adminApprove(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	a.changeUserStatus(w, r, c, a.svc.ApproveUser)
}

// adminSuspend suspends an account; its sessions end at once.
func (a *API) adminSuspend(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	a.changeUserStatus(w, r, c, func(ctx context.Context, admin rooms.Caller, userID string) (rooms.User, error) {
		u, err := a.svc.SuspendUser(ctx, admin, userID)
		if err == nil {
			a.ender.EndSessions("", u.ID)
		}
		return u, err
	})
}

// adminReinstate makes a suspended account active again.
func (a *API) adminReinstate(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	a.changeUserStatus(w, r, c, a.svc.ReinstateUser)
}

// changeUserStatus applies one of the service's status changes to the user
// named in the path; the service checks the caller is an admin of the same
// organisation and audits the change.
func (a *API) changeUserStatus(w http.ResponseWriter, r *http.Request, c rooms.Caller,
	change func(ctx context.Context, admin rooms.Caller, userID string) (rooms.User, error)) {
	u, err := change(r.Context(), c, r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"user": u})
}
