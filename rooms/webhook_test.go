package rooms_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"patientpass/rooms"
)

func TestWebhookSecrets(t *testing.T) {
	s := rooms.NewWebhookSecret()
	key, err := rooms.WebhookKey(s)
	if err != nil || len(key) != 32 || !strings.HasPrefix(s, "whsec_") {
		t.Fatalf("new secret %q: key of %d bytes, %v; want whsec_ and 32 bytes", s, len(key), err)
	}
	if rooms.NewWebhookSecret() == s {
		t.Fatal("two new secrets are the same")
	}
	of := func(n int) string { return "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for _, c := range []struct {
		name, secret string
		ok           bool
	}{
		{"24 bytes", of(24), true},
		{"64 bytes", of(64), true},
		{"23 bytes", of(23), false},
		{"65 bytes", of(65), false},
		{"no prefix", base64.StdEncoding.EncodeToString(make([]byte, 32)), false},
		{"not base64", "whsec_not*base64!", false},
		{"unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 25)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := rooms.WebhookKey(c.secret)
			if c.ok != (err == nil) {
				t.Fatalf("WebhookKey(%q) = %v, want ok %v", c.secret, err, c.ok)
			}
			var de *rooms.Error
			if err != nil && (!errors.As(err, &de) || de.Field != "secret") {
				t.Fatalf("error %v does not name the secret field", err)
			}
		})
	}
}

// fakeDNS answers every lookup from a table, as a resolver that lies
// would.
func fakeDNS(table map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		a, ok := table[host]
		if !ok {
			return nil, fmt.Errorf("no such host %s", host)
		}
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
}

func TestWebhookDestinations(t *testing.T) {
	dns := fakeDNS(map[string]string{"ehr.example.nhs.uk": "93.184.216.34", "localhost": "127.0.0.1",
		"rebind.example": "10.0.0.7", "meta.example": "169.254.169.254", "six.example": "2606:4700::1111"})
	strict, err := rooms.ParseWebhookAllow("")
	if err != nil {
		t.Fatal(err)
	}
	strict.Lookup = dns
	allow, err := rooms.ParseWebhookAllow(" 127.0.0.1, hooks.internal ,10.1.0.0/16,[fd00::5]")
	if err != nil {
		t.Fatal(err)
	}
	allow.Lookup = dns
	for _, c := range []struct {
		url          string
		strict, list bool // allowed without and with the allow list
	}{
		{"https://ehr.example.nhs.uk/hooks", true, true},
		{"https://six.example/hooks", true, true},
		{"https://93.184.216.34:8443/x", true, true},
		{"http://ehr.example.nhs.uk/hooks", false, false},
		{"https://127.0.0.1/hooks", false, true},
		{"http://127.0.0.1:9000/hooks", false, true},
		{"https://127.0.0.2/hooks", false, false},
		{"https://localhost/hooks", false, true}, // resolves to a listed address
		{"https://10.0.0.1/hooks", false, false},
		{"https://10.1.2.3/hooks", false, true},
		{"https://rebind.example/hooks", false, false},
		{"https://169.254.169.254/latest/meta-data", false, false},
		{"https://meta.example/", false, false},
		{"https://[::1]/hooks", false, false},
		{"https://[fd00::5]/hooks", false, true},
		{"https://[fc00::1]/hooks", false, false},
		{"https://[fe80::1]/hooks", false, false},
		{"https://[::ffff:127.0.0.1]/hooks", false, true},
		{"https://[::ffff:10.0.0.1]/hooks", false, false},
		{"https://0.0.0.0/hooks", false, false},
		{"https://[::]/hooks", false, false},
		// IPv4-compatible, site-local and tunnels into IPv4 (6to4,
		// Teredo) are not public IPv6.
		{"https://[::7f00:1]/hooks", false, false},
		{"https://[fec0::1]/hooks", false, false},
		{"https://[2002:7f00:1::1]/hooks", false, false},
		{"https://[2001:0:7f00:1::1]/hooks", false, false},
		{"https://[2606:4700::1111]/hooks", true, true},
		{"https://224.0.0.1/hooks", false, false},
		{"https://100.64.0.1/hooks", false, false},
		{"https://hooks.internal/x", false, true},
		{"http://hooks.internal/x", false, true},
		{"https://unknown.example/x", false, false},
		{"https://user:pw@ehr.example.nhs.uk/hooks", false, false},
		{"https://ehr.example.nhs.uk/hooks#frag", false, false},
		{"ftp://ehr.example.nhs.uk/hooks", false, false},
		{"/relative", false, false},
		{"https://ehr.example.nhs.uk:0/x", false, false},
		{"https://ehr.example.nhs.uk:99999/x", false, false},
		{"https://bad_host!/x", false, false},
		{"", false, false},
		{"https://ehr.example.nhs.uk/" + strings.Repeat("a", 2000), false, false},
	} {
		for _, d := range []struct {
			name string
			dest *rooms.WebhookDestinations
			want bool
		}{{"strict", strict, c.strict}, {"listed", allow, c.list}} {
			_, err := d.dest.CheckURL(t.Context(), c.url)
			if (err == nil) != d.want {
				t.Errorf("%s: CheckURL(%.60q) = %v, want allowed %v", d.name, c.url, err, d.want)
			}
			var de *rooms.Error
			if err != nil && (!errors.As(err, &de) || de.Field != "url" || de.Code != rooms.CodeInvalid) {
				t.Errorf("%s: %q: error %v is not invalid input in url", d.name, c.url, err)
			}
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "bad host!", "10.0.0.0/8,x y"} {
		if _, err := rooms.ParseWebhookAllow(bad); err == nil {
			t.Errorf("ParseWebhookAllow(%q) accepted", bad)
		}
	}
	if !allow.AllowsAddr(netip.MustParseAddr("10.1.200.1")) || allow.AllowsAddr(netip.MustParseAddr("10.2.0.1")) ||
		strict.AllowsAddr(netip.MustParseAddr("127.0.0.1")) || !strict.AllowsAddr(netip.MustParseAddr("8.8.8.8")) {
		t.Error("AllowsAddr disagrees with the list")
	}
}

// webhookWorld is a world whose service may send webhooks to 127.0.0.1,
// with an admin at each of RET (which receives mscc) and RJR.
type webhookWorld struct {
	*world
	svc               *rooms.Service
	admin, otherAdmin rooms.Caller
	receiverURL       string
}

// newWebhookWorld extends base with a service of its own over the same
// store, allowed to send to 127.0.0.1.
func newWebhookWorld(t *testing.T, base *world) *webhookWorld {
	t.Helper()
	w := &webhookWorld{world: base, receiverURL: "http://127.0.0.1:9/hooks"}
	dest, err := rooms.ParseWebhookAllow("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	w.svc = rooms.NewService(rooms.Config{Store: base.store, Clock: w.clock, Node: "test", Webhooks: dest})
	admin := func(org string, n int) rooms.Caller {
		u, err := w.svc.CreateUser(t.Context(), rooms.System, rooms.NewUser{Name: "Admin", Email: fmt.Sprintf("admin%d@example.nhs.uk", n),
			ProfessionalBody: rooms.BodyGMC, RegistrationNumber: fmt.Sprintf("710000%d", n), Organisation: org,
			Roles: []rooms.Role{rooms.RoleAdmin}, Status: rooms.UserActive, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return rooms.Caller{User: u, ClientAddr: "127.0.0.1"}
	}
	w.admin, w.otherAdmin = admin("RET", 1), admin("RJR", 2)
	return w
}

func (w *webhookWorld) subscribe(t *testing.T, admin rooms.Caller, events ...string) rooms.Webhook {
	t.Helper()
	if len(events) == 0 {
		for _, e := range rooms.WebhookEvents {
			events = append(events, string(e))
		}
	}
	h, err := w.svc.CreateWebhook(t.Context(), admin, rooms.NewWebhook{URL: w.receiverURL, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// drain claims and delivers everything queued, returning what was queued
// in claim order.
func drain(t *testing.T, s rooms.Store) []rooms.WebhookClaim {
	t.Helper()
	var all []rooms.WebhookClaim
	for range 100 {
		cs, err := s.ClaimWebhookMessages(t.Context(), rooms.WebhookClaimRequest{Lease: rooms.NewID(), Now: time.Now(),
			LeaseUntil: time.Now().Add(time.Minute), Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			return all
		}
		for _, c := range cs {
			all = append(all, c)
			err := s.FinishWebhookAttempt(t.Context(), c, rooms.WebhookDelivery{MessageID: c.Message.ID, Type: c.Message.Type,
				ReferralID: c.Message.ReferralID, Seq: c.Message.Seq, Attempt: 1, At: time.Now(), StatusCode: 200,
				Outcome: rooms.DeliveryDelivered, Payload: c.Message.Payload})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("the outbox never emptied")
	return nil
}

func TestWebhookOutboxFollowsTheReferral(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w := newWebhookWorld(t, base)
		ctx := t.Context()
		h := w.subscribe(t, w.admin)
		other := w.subscribe(t, w.otherAdmin) // RJR refers; it receives nothing
		onlyMessages := w.subscribe(t, w.admin, "referral.message")

		draft, err := w.svc.CreateReferral(ctx, w.referrer, newReferral("draft", rooms.PriorityUrgent, false))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "d1", ReferralID: draft.ID, Body: "not yet sent"}); err != nil {
			t.Fatal(err)
		}
		if n, _ := w.store.QueuedWebhookMessages(ctx, ""); n != 0 {
			t.Fatalf("a draft queued %d webhook messages", n)
		}

		r := w.create(t, "r1", rooms.PriorityEmergency)
		secret := "Mr Test Patient has new weakness"
		steps := []func() error{
			func() error {
				_, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "m1", ReferralID: r.ID, Body: secret})
				return err
			},
			func() error {
				_, _, err := w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: "p1", ReferralID: r.ID, Section: "imaging", Text: "MRI whole spine for " + secret})
				return err
			},
			func() error {
				_, _, err := w.svc.Transition(ctx, w.specialist, rooms.Transition{Ref: "t1", ReferralID: r.ID, To: rooms.StatusInTriage})
				return err
			},
			func() error { // refused: writes nothing, queues nothing
				_, _, err := w.svc.Transition(ctx, w.specialist, rooms.Transition{Ref: "t2", ReferralID: r.ID, To: rooms.StatusTransferred})
				if err == nil {
					return errors.New("an illegal transition was accepted")
				}
				return nil
			},
			func() error {
				_, _, err := w.svc.Transition(ctx, w.specialist, rooms.Transition{Ref: "t3", ReferralID: r.ID, To: rooms.StatusDeclined, Reason: "declined for " + secret})
				return err
			},
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if n, _ := w.store.QueuedWebhookMessages(ctx, other.ID); n != 0 {
			t.Errorf("the referring organisation's webhook was queued %d messages", n)
		}
		if n, _ := w.store.QueuedWebhookMessages(ctx, onlyMessages.ID); n != 1 {
			t.Errorf("the messages-only webhook was queued %d messages, want 1", n)
		}
		var got []string
		for _, c := range drain(t, w.store) {
			if c.Webhook.ID != h.ID {
				continue
			}
			raw := string(c.Message.Payload)
			for _, leak := range []string{r.Patient.NHSNumber, "943 476 5919", r.Patient.Name, "1950-01-01", secret, "01244"} {
				if strings.Contains(raw, leak) {
					t.Errorf("payload %s carries %q", raw, leak)
				}
			}
			var p struct {
				Type      string    `json:"type"`
				ID        string    `json:"id"`
				Timestamp time.Time `json:"timestamp"`
				Data      struct {
					Referral string `json:"referral"`
					Seq      int64  `json:"seq"`
					Status   string `json:"status"`
					Priority string `json:"priority"`
					To       string `json:"to"`
					Section  string `json:"section"`
				} `json:"data"`
			}
			if err := json.Unmarshal(c.Message.Payload, &p); err != nil {
				t.Fatalf("payload %s: %v", raw, err)
			}
			if p.ID != c.Message.ID || p.Data.Referral != r.ID || p.Data.Seq != c.Message.Seq || p.Data.Priority != "emergency" || p.Timestamp.IsZero() {
				t.Errorf("payload %s does not match its message %+v", raw, c.Message)
			}
			got = append(got, fmt.Sprintf("%d %s %s%s%s", p.Data.Seq, p.Type, p.Data.Status, p.Data.To, p.Data.Section))
		}
		want := []string{"2 referral.submitted submittedsubmitted", "3 referral.message submitted", "4 referral.plan_edit submittedimaging",
			"5 referral.status_changed in_triagein_triage", "6 referral.status_changed declineddeclined"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("messages\n got %q\nwant %q", got, want)
		}
	})
}

func TestWebhookManagementIsCheckedAndAudited(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w := newWebhookWorld(t, base)
		ctx := t.Context()
		for _, c := range []struct {
			name  string
			who   rooms.Caller
			n     rooms.NewWebhook
			code  rooms.Code
			field string
		}{
			{"not an admin", w.specialist, rooms.NewWebhook{URL: w.receiverURL, Events: []string{"referral.message"}}, rooms.CodeForbidden, ""},
			{"no url", w.admin, rooms.NewWebhook{Events: []string{"referral.message"}}, rooms.CodeInvalid, "url"},
			{"private url", w.admin, rooms.NewWebhook{URL: "https://10.0.0.1/x", Events: []string{"referral.message"}}, rooms.CodeInvalid, "url"},
			{"metadata url", w.admin, rooms.NewWebhook{URL: "http://169.254.169.254/latest", Events: []string{"referral.message"}}, rooms.CodeInvalid, "url"},
			{"no events", w.admin, rooms.NewWebhook{URL: w.receiverURL}, rooms.CodeInvalid, "events"},
			{"unknown event", w.admin, rooms.NewWebhook{URL: w.receiverURL, Events: []string{"referral.message", "referral.deleted"}}, rooms.CodeInvalid, "events[1]"},
			{"event twice", w.admin, rooms.NewWebhook{URL: w.receiverURL, Events: []string{"referral.message", "referral.message"}}, rooms.CodeInvalid, "events[1]"},
			{"bad secret", w.admin, rooms.NewWebhook{URL: w.receiverURL, Events: []string{"referral.message"}, Secret: "whsec_c2hvcnQ="}, rooms.CodeInvalid, "secret"},
		} {
			_, err := w.svc.CreateWebhook(ctx, c.who, c.n)
			wantErr(t, err, c.code, c.field)
		}
		if ws, err := w.svc.Webhooks(ctx, w.admin); err != nil || len(ws) != 0 {
			t.Fatalf("refused registrations stored webhooks: %v, %v", ws, err)
		}
		own := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
		h, err := w.svc.CreateWebhook(ctx, w.admin, rooms.NewWebhook{URL: w.receiverURL, Events: []string{"referral.reminder", "referral.message"}, Secret: own})
		if err != nil {
			t.Fatal(err)
		}
		if h.Secret != own || len(h.Events) != 2 || h.Events[0] != rooms.WebhookEventMessage || h.Organisation != "RET" {
			t.Errorf("webhook %+v: want the given secret, events in canonical order, RET", h)
		}
		if _, err := w.svc.Webhooks(ctx, w.specialist); err == nil {
			t.Error("a specialist listed webhooks")
		}
		if _, err := w.svc.DeleteWebhook(ctx, w.otherAdmin, h.ID); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Errorf("another organisation's admin deleting: %v, want not found", err)
		}
		if _, err := w.svc.WebhookDeliveries(ctx, w.otherAdmin, h.ID, 0, 0); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Errorf("another organisation's admin reading deliveries: %v, want not found", err)
		}
		if _, err := w.svc.WebhookDeliveries(ctx, w.admin, h.ID, 0, rooms.MaxDeliveryLimit+1); rooms.CodeOf(err) != rooms.CodeInvalid {
			t.Errorf("an oversized page: %v, want invalid", err)
		}
		if _, err := w.svc.RetryWebhookDelivery(ctx, w.admin, h.ID, 12345); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Errorf("retrying an absent delivery: %v, want not found", err)
		}
		if _, err := w.svc.DeleteWebhook(ctx, w.admin, h.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.DeleteWebhook(ctx, w.admin, h.ID); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Errorf("deleting twice: %v, want not found", err)
		}
		outcomes := map[string]int{}
		for _, e := range w.auditFor(t, rooms.AuditFilter{Limit: 500}) {
			if strings.HasPrefix(e.Event, "webhook.") {
				outcomes[e.Event+" "+e.Outcome]++
			}
		}
		for k, want := range map[string]int{"webhook.create success": 1, "webhook.create denied": 1, "webhook.create invalid": 7,
			"webhook.list denied": 1, "webhook.delete denied": 2, "webhook.delete success": 1, "webhook.deliveries denied": 1,
			"webhook.deliveries invalid": 1, "webhook.retry denied": 1} {
			if outcomes[k] != want {
				t.Errorf("audit %q: %d entries, want %d (all: %v)", k, outcomes[k], want, outcomes)
			}
		}
	})
}

func TestConcurrentWebhookRegistrationsAndRetries(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w := newWebhookWorld(t, base)
		ctx := t.Context()
		var (
			wg                  sync.WaitGroup
			mu                  sync.Mutex
			created, conflicted int
		)
		for range 40 {
			wg.Go(func() {
				_, err := w.svc.CreateWebhook(ctx, w.admin, rooms.NewWebhook{URL: w.receiverURL, Events: []string{"referral.message"}})
				mu.Lock()
				defer mu.Unlock()
				switch rooms.CodeOf(err) {
				case "", rooms.CodeInternal:
					if err != nil {
						t.Errorf("registration: %v", err)
						return
					}
					created++
				case rooms.CodeConflict:
					conflicted++
				default:
					t.Errorf("registration: %v", err)
				}
			})
		}
		wg.Wait()
		ws, err := w.svc.Webhooks(ctx, w.admin)
		if created != rooms.MaxWebhooks || conflicted != 40-rooms.MaxWebhooks || err != nil || len(ws) != rooms.MaxWebhooks {
			t.Fatalf("40 at once: %d created, %d refused, %d listed (%v); want %d, %d, %d",
				created, conflicted, len(ws), err, rooms.MaxWebhooks, 40-rooms.MaxWebhooks, rooms.MaxWebhooks)
		}

		// One delivered message of ws[0], replayed by 40 admins at once:
		// it is queued once, and the others are told it is waiting.
		r := w.create(t, "r1", rooms.PriorityUrgent)
		if _, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "m1", ReferralID: r.ID, Body: "hello"}); err != nil {
			t.Fatal(err)
		}
		drain(t, w.store)
		ds, err := w.svc.WebhookDeliveries(ctx, w.admin, ws[0].ID, 0, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries of %s: %v, %v", ws[0].ID, ds, err)
		}
		var queuedOnce, waiting int
		for range 40 {
			wg.Go(func() {
				m, err := w.svc.RetryWebhookDelivery(ctx, w.admin, ws[0].ID, ds[0].ID)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && m.ID == ds[0].MessageID:
					queuedOnce++
				case rooms.CodeOf(err) == rooms.CodeConflict:
					waiting++
				default:
					t.Errorf("retry: %+v, %v", m, err)
				}
			})
		}
		wg.Wait()
		if n, _ := w.store.QueuedWebhookMessages(ctx, ws[0].ID); queuedOnce != 1 || waiting != 39 || n != 1 {
			t.Errorf("40 retries at once: %d queued, %d refused, %d in the outbox; want 1, 39, 1", queuedOnce, waiting, n)
		}
		again := drain(t, w.store)
		if len(again) != 1 || again[0].Message.ID != ds[0].MessageID || string(again[0].Message.Payload) != string(ds[0].Payload) {
			t.Errorf("the replay delivered %+v, want message %s as first sent", again, ds[0].MessageID)
		}
	})
}

func TestRemindersAreQueuedForWebhooks(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w := newWebhookWorld(t, base)
		h := w.subscribe(t, w.admin, "referral.reminder")
		w.clock.Set(tuesday10)
		r := w.create(t, "e1", rooms.PriorityEmergency) // due in an hour: reminded at 45 minutes
		if n := w.raise(t, tuesday10.Add(45*time.Minute)); n != 1 {
			t.Fatalf("raised %d reminders, want 1", n)
		}
		cs := drain(t, w.store)
		if len(cs) != 1 || cs[0].Webhook.ID != h.ID || cs[0].Message.Type != rooms.WebhookEventReminder || cs[0].Message.ReferralID != r.ID {
			t.Fatalf("queued %+v, want the reminder for %s", cs, h.ID)
		}
		var p struct {
			Data struct {
				Reason string     `json:"reason"`
				DueAt  *time.Time `json:"due_at"`
				Author string     `json:"author"`
			} `json:"data"`
		}
		if err := json.Unmarshal(cs[0].Message.Payload, &p); err != nil || p.Data.Reason != "due_soon" || p.Data.DueAt == nil ||
			!p.Data.DueAt.Equal(tuesday10.Add(time.Hour)) || p.Data.Author != rooms.System.User.ID {
			t.Errorf("reminder payload %s (%v)", cs[0].Message.Payload, err)
		}
	})
}
