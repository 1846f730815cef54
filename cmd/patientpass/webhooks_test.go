package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// TestWebhookDeliveryAcrossSIGKILL runs real node processes on one
// Postgres schema. 60 messages are queued for a receiver on 127.0.0.1
// (allowed by PATIENTPASS_WEBHOOK_ALLOW); the node delivering them is
// killed (SIGKILL) while a delivery waits for the receiver's answer. A
// second node takes the messages over once the dead node's lease runs
// out: the receiver gets every message, with a valid signature, in seq
// order (the one cut off may come twice, with its webhook-id), and the
// outbox ends empty.
func TestWebhookDeliveryAcrossSIGKILL(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	allow, _ := rooms.ParseWebhookAllow("127.0.0.1")
	svc := rooms.NewService(rooms.Config{Store: store, Node: "seed", Webhooks: allow})
	for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester"}} {
		if err := svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		t.Fatal(err)
	}
	mk := func(email, org string, role rooms.Role) rooms.Caller {
		u, err := svc.CreateUser(ctx, rooms.System, rooms.NewUser{Name: "User " + email, Email: email, ProfessionalBody: rooms.BodyGMC,
			RegistrationNumber: "7123456", Organisation: org, Roles: []rooms.Role{role}, Status: rooms.UserActive, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return rooms.Caller{User: u}
	}
	referrer, admin := mk("referrer@example.nhs.uk", "RJR", rooms.RoleClinician), mk("admin@example.nhs.uk", "RET", rooms.RoleAdmin)

	// The receiver answers slowly, so a node is mid-delivery most of the
	// time; a request whose sender vanished is not accepted.
	var (
		mu       sync.Mutex
		got      = map[string][]int64{}
		bad      int
		arrivals = make(chan struct{}, 1000)
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		arrivals <- struct{}{}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), body)
		var p struct {
			Data struct {
				Referral string `json:"referral"`
				Seq      int64  `json:"seq"`
			} `json:"data"`
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) || json.Unmarshal(body, &p) != nil {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got[p.Data.Referral] = append(got[p.Data.Referral], p.Data.Seq)
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	h, err := svc.CreateWebhook(ctx, admin, rooms.NewWebhook{URL: "http://" + ln.Addr().String() + "/hooks", Events: []string{"referral.message"}})
	if err != nil {
		t.Fatal(err)
	}
	secret = h.Secret

	var ids []string
	for i := range 3 {
		r, err := svc.CreateReferral(ctx, referrer, rooms.NewReferral{Ref: fmt.Sprint("k", i), PathwayID: "mscc", Priority: rooms.PriorityUrgent,
			Submit: true, Patient: rooms.Patient{NHSNumber: "9434765919", Name: "Test Patient", DateOfBirth: "1950-01-01", Sex: "female"},
			Form: map[string]any{"primary_cancer": "Prostate", "spinal_levels": "T6–T8", "neuro_limb_weakness": false,
				"neuro_bladder_bowel": false, "ambulatory_status": "independent", "steroids_given": true, "spinal_precautions": true},
			ContactPhone: "01244 365000", ConsultantDiscussed: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		for m := range 20 {
			if _, err := svc.PostMessage(ctx, referrer, rooms.PostMessage{Ref: fmt.Sprint(i, "-", m), ReferralID: r.ID, Body: "update"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	bin := buildNode(t)
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, "serve")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "PATIENTPASS_ADDR=127.0.0.1:0", "PATIENTPASS_NODE="+name,
			"LOG_FORMAT=json", "PATIENTPASS_DATA_DIR="+t.TempDir(), "PATIENTPASS_WEBHOOK_ALLOW=127.0.0.1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) })
		return cmd
	}
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range got {
			n += len(slices.Compact(slices.Clone(s)))
		}
		return n
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s (%d received)", limit, what, received())
			}
		}
	}

	a := start("node-a")
	waitFor("node A's first deliveries", 60*time.Second, func() bool { return received() >= 10 })
	<-arrivals
	for len(arrivals) > 0 {
		<-arrivals
	}
	<-arrivals // a request has just arrived: node A waits for its answer
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	before := received()
	if before >= 60 {
		t.Fatalf("node A delivered all 60 before it was killed")
	}
	start("node-b")
	waitFor("every message", 90*time.Second, func() bool { return received() == 60 })
	mu.Lock()
	for _, id := range ids {
		seqs := slices.Compact(slices.Clone(got[id]))
		var want []int64
		for s := int64(3); s <= 22; s++ {
			want = append(want, s)
		}
		if !slices.Equal(seqs, want) {
			t.Errorf("referral %s: received %v, want 3..22 in order", id, got[id])
		}
	}
	if bad != 0 {
		t.Errorf("%d deliveries failed the signature check", bad)
	}
	mu.Unlock()
	waitFor("the outbox to empty", 10*time.Second, func() bool {
		n, err := store.QueuedWebhookMessages(ctx, "")
		return err == nil && n == 0
	})
	t.Logf("node A delivered %d of 60 before SIGKILL; node B delivered the rest", before)
}
