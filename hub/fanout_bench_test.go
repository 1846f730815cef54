package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"patientpass/hub/password"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// BenchmarkFanout10 publishes one committed message to a referral's room
// with 10 local subscribers on real WebSockets, and reports what the hub
// allocates per delivery (the clients drain their sockets without decoding).
func BenchmarkFanout10(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "pp.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	svc := rooms.NewService(rooms.Config{Store: store, Node: "bench"})
	for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester"}} {
		if err := svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			b.Fatal(err)
		}
	}
	if err := svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		b.Fatal(err)
	}
	hash, _ := password.Hash("correct horse battery staple")
	u, err := svc.CreateUser(ctx, rooms.System, rooms.NewUser{Name: "Bench Referrer", Email: "bench@example.nhs.uk",
		ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7100001", Organisation: "RJR",
		Roles: []rooms.Role{rooms.RoleClinician}, Status: rooms.UserActive, PasswordHash: hash})
	if err != nil {
		b.Fatal(err)
	}
	caller := rooms.Caller{User: u}
	ref, err := svc.CreateReferral(ctx, caller, rooms.NewReferral{Ref: "r1", PathwayID: "mscc", Priority: rooms.PriorityUrgent,
		Patient:      rooms.Patient{NHSNumber: "9434765919", Name: "Alex Example", DateOfBirth: "1960-01-01", Sex: "female"},
		Form:         map[string]any{"primary_cancer": "prostate", "spinal_levels": "T10-T11", "neuro_limb_weakness": false, "neuro_bladder_bowel": false, "ambulatory_status": "independent", "steroids_given": false, "spinal_precautions": true},
		ContactPhone: "0151 000 0000", ConsultantDiscussed: true})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	defer srv.Close()
	s, err := NewServer(Config{Service: svc, Logger: zerolog.New(io.Discard), PublicURL: srv.URL,
		SessionKeys: [][]byte{bytes.Repeat([]byte{7}, 32)}})
	if err != nil {
		b.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	defer s.Shutdown(ctx)

	const subscribers = 10
	for i := range subscribers {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		res, err := hc.Post(srv.URL+"/api/session", "application/json", strings.NewReader(`{"email":"bench@example.nhs.uk","password":"correct horse battery staple"}`))
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("login %d: %v %v", i, err, res)
		}
		res.Body.Close()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", &websocket.DialOptions{
			HTTPClient: hc, HTTPHeader: http.Header{"Origin": {srv.URL}}})
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		sub, _ := json.Marshal(map[string]any{"type": "subscribe", "topic": "referral:" + ref.ID, "after": ref.HeadSeq})
		if err := c.Write(ctx, websocket.MessageText, sub); err != nil {
			b.Fatal(err)
		}
		for { // the subscribed frame
			_, data, err := c.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(data, []byte(`"subscribed"`)) {
				break
			}
		}
		nc := websocket.NetConn(ctx, c, websocket.MessageText)
		go func() { _, _ = io.CopyBuffer(io.Discard, nc, make([]byte, 64<<10)) }()
	}
	body, _ := json.Marshal(rooms.MessageBody{Body: "Patient is stable overnight; <MRI> booked for 08:00 & steroids given."})
	event := rooms.Event{ReferralID: ref.ID, Kind: rooms.EventMessage, Author: rooms.AuthorOf(u), At: time.Now(), Body: body}
	seq := ref.HeadSeq
	delivered := func() int64 { return s.rt.m.eventsDelivered.Load() }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		seq++
		event.Seq = seq
		want := delivered() + subscribers
		s.rt.Publish(ctx, event)
		for delivered() < want {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*subscribers), "deliveries")
}
