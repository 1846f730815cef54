package hub

import (
	"context"
	"net/http"

	"patientpass/rooms"
)

// adminUsers lists the accounts of the admin's organisation, filtered by
// ?status= (pending, active, suspended).
func (s *Server) adminUsers(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	us, err := s.svc.Users(r.Context(), c, rooms.UserStatus(r.URL.Query().Get("status")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if us == nil {
		us = []rooms.User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": us})
}

// adminApprove activates a pending account.
func (s *Server) adminApprove(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	s.changeUserStatus(w, r, c, s.svc.ApproveUser)
}

// adminSuspend suspends an account; its sessions end at once.
func (s *Server) adminSuspend(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	s.changeUserStatus(w, r, c, func(ctx context.Context, admin rooms.Caller, userID string) (rooms.User, error) {
		u, err := s.svc.SuspendUser(ctx, admin, userID)
		if err == nil {
			s.rt.EndSessions("", u.ID)
		}
		return u, err
	})
}

// adminReinstate makes a suspended account active again.
func (s *Server) adminReinstate(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	s.changeUserStatus(w, r, c, s.svc.ReinstateUser)
}

// changeUserStatus applies one of the service's status changes to the user
// named in the path; the service checks the caller is an admin of the same
// organisation and audits the change.
func (s *Server) changeUserStatus(w http.ResponseWriter, r *http.Request, c rooms.Caller,
	change func(ctx context.Context, admin rooms.Caller, userID string) (rooms.User, error)) {
	u, err := change(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u})
}
