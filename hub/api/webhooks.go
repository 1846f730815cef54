package api

import (
	"net/http"
	"strconv"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// Webhook subscriptions (SPEC §10): an admin registers, lists and deletes
// the organisation's, reads each one's delivery log and replays a message.

type webhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"`
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req webhookRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	h, err := a.svc.CreateWebhook(r.Context(), c, rooms.NewWebhook{URL: req.URL, Events: req.Events, Secret: req.Secret})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	// The secret is shown here once; no listing carries it.
	httpjson.Write(w, http.StatusCreated, map[string]any{"id": h.ID, "secret": h.Secret, "webhook": h})
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	hs, err := a.svc.Webhooks(r.Context(), c)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"webhooks": hs})
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	h, err := a.svc.DeleteWebhook(r.Context(), c, r.PathValue("id"))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"webhook": h})
}

// webhookDeliveries answers {"deliveries":[…],"next":"<id>"}: the next
// page is ?before=<next>; next is absent on the last page.
func (a *API) webhookDeliveries(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	before, err := queryInt(r, "before", 0)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	limit, err := queryInt(r, "limit", 0)
	if err == nil && (limit < 0 || limit > rooms.MaxDeliveryLimit) {
		err = rooms.Invalid("limit", "limit must be from 1 to %d", rooms.MaxDeliveryLimit)
	}
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	ds, err := a.svc.WebhookDeliveries(r.Context(), c, r.PathValue("id"), before, int(limit))
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	body := map[string]any{"deliveries": ds}
	size := int(limit)
	if size == 0 {
		size = rooms.DefaultDeliveryLimit
	}
	if len(ds) == size {
		body["next"] = strconv.FormatInt(ds[len(ds)-1].ID, 10)
	}
	httpjson.Write(w, http.StatusOK, body)
}

func (a *API) retryWebhookDelivery(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	delivery, err := strconv.ParseInt(r.PathValue("delivery"), 10, 64)
	if err != nil || delivery <= 0 {
		httpjson.Fail(w, r, rooms.Invalid("delivery", "delivery must be the id of a delivery attempt"))
		return
	}
	m, err := a.svc.RetryWebhookDelivery(r.Context(), c, r.PathValue("id"), delivery)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusAccepted, map[string]any{"queued": true, "message": m})
}
