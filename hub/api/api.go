// Package api is the REST API of SPEC §5 beyond accounts and sessions: one
// file per resource. Every handler goes through rooms.Service, which
// validates, authorises and audits; handlers only translate between HTTP
// and the service.
package api

import (
	"net/http"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// SessionEnder closes the sockets of a user's sessions on every node, when
// an admin suspends them.
type SessionEnder interface {
	EndSessions(sessionID, userID string)
}

// Authenticator resolves a request to an active user, or answers 401.
type Authenticator interface {
	Required(h func(w http.ResponseWriter, r *http.Request, c rooms.Caller)) http.Handler
}

// API serves the REST resources.
type API struct {
	svc   *rooms.Service
	ender SessionEnder
}

// New returns the API over svc.
func New(svc *rooms.Service, ender SessionEnder) *API {
	return &API{svc: svc, ender: ender}
}

// Routes registers the resources on mux, each behind auth.
func (a *API) Routes(mux *http.ServeMux, auth Authenticator) {
	mux.Handle("GET /api/admin/users", auth.Required(a.adminUsers))
	mux.Handle("POST /api/admin/users/{id}/approve", auth.Required(a.adminApprove))
	mux.Handle("POST /api/admin/users/{id}/suspend", auth.Required(a.adminSuspend))
	mux.Handle("POST /api/admin/users/{id}/reinstate", auth.Required(a.adminReinstate))

	mux.Handle("GET /api/pathways", auth.Required(a.pathways))
	mux.Handle("GET /api/referrals", auth.Required(a.listReferrals))
	mux.Handle("POST /api/referrals", auth.Required(a.createReferral))
	mux.Handle("GET /api/referrals/{id}", auth.Required(a.getReferral))
	mux.Handle("GET /api/referrals/{id}/events", auth.Required(a.referralEvents))
	mux.Handle("POST /api/referrals/{id}/messages", auth.Required(a.postMessage))
	mux.Handle("PUT /api/referrals/{id}/plan/{section}", auth.Required(a.editPlan))
	mux.Handle("POST /api/referrals/{id}/transitions", auth.Required(a.transition))
	mux.Handle("POST /api/referrals/{id}/participants", auth.Required(a.addParticipant))
	mux.Handle("POST /api/referrals/{id}/assignee", auth.Required(a.assign))
	mux.Handle("PUT /api/referrals/{id}/read", auth.Required(a.markRead))

	mux.Handle("GET /api/notifications", auth.Required(a.notifications))
	mux.Handle("POST /api/notifications/read", auth.Required(a.readNotifications))
	mux.Handle("GET /api/board", auth.Required(a.board))
	mux.Handle("GET /api/wallboard", auth.Required(a.wallboard))
	mux.Handle("PUT /api/wallboard/opel", auth.Required(a.setOPEL))
	mux.Handle("GET /api/system-status", auth.Required(a.systemStatus))
	mux.Handle("POST /api/admin/system-status", auth.Required(a.postNotice))
	mux.Handle("DELETE /api/admin/system-status", auth.Required(a.clearNotice))
	mux.Handle("GET /api/admin/displays", auth.Required(a.listDisplays))
	mux.Handle("POST /api/admin/displays", auth.Required(a.createDisplay))
	mux.Handle("DELETE /api/admin/displays/{id}", auth.Required(a.revokeDisplay))
	mux.Handle("GET /api/admin/integrations", auth.Required(a.listIntegrations))
	mux.Handle("POST /api/admin/integrations", auth.Required(a.registerIntegration))
	mux.Handle("DELETE /api/admin/integrations/{id}", auth.Required(a.revokeIntegration))
	mux.Handle("GET /api/admin/audit", auth.Required(a.auditTrail))
	mux.Handle("GET /api/admin/webhooks", auth.Required(a.listWebhooks))
	mux.Handle("POST /api/admin/webhooks", auth.Required(a.createWebhook))
	mux.Handle("DELETE /api/admin/webhooks/{id}", auth.Required(a.deleteWebhook))
	mux.Handle("GET /api/admin/webhooks/{id}/deliveries", auth.Required(a.webhookDeliveries))
	mux.Handle("POST /api/admin/webhooks/{id}/deliveries/{delivery}/retry", auth.Required(a.retryWebhookDelivery))

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, &rooms.Error{Code: rooms.CodeNotFound, Message: "no such API endpoint"})
	})
}
