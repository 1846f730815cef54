package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/broker/redisbroker/redistest"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// sock is a raw WebSocket reading every frame the server sends, for the
// snapshot topics (which the Go client does not wrap).
type sock struct {
	t      *testing.T
	conn   *websocket.Conn
	mu     sync.Mutex
	frames []wire.ServerFrame // guarded by mu
	status websocket.StatusCode
	closed chan struct{}
	change chan struct{}
}

// dialSock opens a socket to the node at base as the browser c.
func dialSock(t *testing.T, c *client, base, origin string) *sock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	h := http.Header{"Origin": {origin}}
	var parts []string
	for _, ck := range c.cookies() {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	h.Set("Cookie", strings.Join(parts, "; "))
	conn, res, err := websocket.Dial(ctx, base+"/ws", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (%d)", base, err, status)
	}
	s := &sock{t: t, conn: conn, closed: make(chan struct{}), change: make(chan struct{}, 1)}
	go func() {
		defer close(s.closed)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				s.mu.Lock()
				s.status = websocket.CloseStatus(err)
				s.mu.Unlock()
				return
			}
			var f wire.ServerFrame
			if err := json.Unmarshal(data, &f); err != nil {
				t.Errorf("frame is not JSON: %s", data)
				return
			}
			s.mu.Lock()
			s.frames = append(s.frames, f)
			s.mu.Unlock()
			select {
			case s.change <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { _ = conn.CloseNow() })
	return s
}

func (s *sock) send(v any) {
	s.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// await waits for the first frame after the index from that matches, and
// returns it with the index after it.
func (s *sock) await(what string, from int, match func(wire.ServerFrame) bool) (wire.ServerFrame, int) {
	s.t.Helper()
	deadline := time.After(waitFor)
	for {
		s.mu.Lock()
		for i := from; i < len(s.frames); i++ {
			if match(s.frames[i]) {
				f := s.frames[i]
				s.mu.Unlock()
				return f, i + 1
			}
		}
		n := len(s.frames)
		s.mu.Unlock()
		select {
		case <-s.change:
		case <-s.closed:
			s.mu.Lock()
			more := len(s.frames) > n
			s.mu.Unlock()
			if !more {
				s.t.Fatalf("socket closed (%d) while waiting for %s", s.status, what)
			}
		case <-deadline:
			s.t.Fatalf("waited %s for %s; frames %+v", waitFor, what, s.frames)
		}
	}
}

func (s *sock) subscribe(topic string) wire.ServerFrame {
	s.t.Helper()
	s.send(map[string]any{"type": "subscribe", "topic": topic})
	f, _ := s.await("snapshot of "+topic, 0, func(f wire.ServerFrame) bool {
		return (f.Type == wire.TypeSnapshot || f.Type == wire.TypeError) && f.Topic == topic
	})
	return f
}

// closeStatus waits for the socket to close and returns its code.
func (s *sock) closeStatus() websocket.StatusCode {
	s.t.Helper()
	select {
	case <-s.closed:
	case <-time.After(waitFor):
		s.t.Fatal("the socket did not close")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func data[T any](t *testing.T, f wire.ServerFrame) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(f.Data, &v); err != nil {
		t.Fatalf("data of %s %s: %v (%s)", f.Type, f.Topic, err, f.Data)
	}
	return v
}

func TestClusterBoardFollowsAReferralAcrossNodes(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	a, b := cl.nodes[0], cl.nodes[1]
	coord := a.user("RET", rooms.UserActive, rooms.RoleCoordinator)
	spec := a.user("RET", rooms.UserActive, rooms.RoleSpecialist)
	referrer := a.user("RJR", rooms.UserActive, rooms.RoleClinician)
	cc, sc, rc := a.login(coord.Email), a.login(spec.Email), a.login(referrer.Email)

	board := dialSock(t, cc, b.base, clusterOrigin)
	snap := data[rooms.Board](t, board.subscribe("board:mscc"))
	if snap.Pathway != "mscc" || len(snap.Referrals) != 0 {
		t.Fatalf("first snapshot %+v; want an empty mscc board", snap)
	}
	id := rc.newReferral()
	if res := cc.do("POST", "/api/referrals/"+id+"/transitions", map[string]any{"ref": "claim", "to": "in_triage"}); res.status != 200 {
		t.Fatalf("claim = %d %s", res.status, res.raw)
	}
	if res := sc.do("POST", "/api/referrals/"+id+"/transitions", map[string]any{"ref": "accept", "to": "accepted", "outcome": map[string]any{"bed_type": "spinal"}}); res.status != 200 {
		t.Fatalf("accept = %d %s", res.status, res.raw)
	}
	var seen []string
	next := 0
	for len(seen) < 3 {
		f, n := board.await("board updates", next, func(f wire.ServerFrame) bool { return f.Type == wire.TypeUpdate })
		next = n
		u := data[rooms.BoardUpdate](t, f)
		switch {
		case u.Referral != nil && u.Referral.ID == id:
			seen = append(seen, string(u.Referral.Status))
			if u.Referral.Status == rooms.StatusInTriage && (u.Referral.Assignee == nil || u.Referral.Assignee.ID != coord.ID) {
				t.Fatalf("claimed item's assignee %+v; want the coordinator", u.Referral.Assignee)
			}
		case u.Removed == id:
			seen = append(seen, "removed")
		}
	}
	if strings.Join(seen, ",") != "submitted,in_triage,removed" {
		t.Fatalf("node B's board saw %v; want the referral appear, move and leave, in order", seen)
	}
	// The REST board agrees: nothing open.
	res := cc.do("GET", "/api/board?pathway=mscc", nil)
	if res.status != 200 || len(res.body["referrals"].([]any)) != 0 {
		t.Fatalf("GET /api/board = %d %s", res.status, res.raw)
	}
	// A referring clinician has no board.
	if got := dialSock(t, rc, b.base, clusterOrigin).subscribe("board:mscc"); got.Type != wire.TypeError || got.Code != string(rooms.CodeNotFound) {
		t.Fatalf("referrer's board subscription answered %+v; want not_found", got)
	}
}

func TestClusterSystemNoticeReachesEveryone(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	a, b := cl.nodes[0], cl.nodes[1]
	_, admin, _ := a.enrolledAdmin("RET")
	early := a.login(a.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
	s := dialSock(t, early, b.base, clusterOrigin)
	if n := data[struct{ Notice *rooms.SystemNotice }](t, s.subscribe("system")); n.Notice != nil {
		t.Fatalf("notice before any was posted: %+v", n.Notice)
	}
	res := admin.do("POST", "/api/admin/system-status", map[string]any{"level": "degraded", "message": "PACS images delayed; phone radiology on 4400"})
	if res.status != 201 {
		t.Fatalf("post notice = %d %s", res.status, res.raw)
	}
	f, next := s.await("the notice on node B", 0, func(f wire.ServerFrame) bool { return f.Type == wire.TypeUpdate && f.Topic == "system" })
	if n := data[struct{ Notice *rooms.SystemNotice }](t, f); n.Notice == nil || n.Notice.Level != "degraded" {
		t.Fatalf("update %s; want the degraded notice", f.Data)
	}
	late := a.login(a.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
	if n := data[struct{ Notice *rooms.SystemNotice }](t, dialSock(t, late, b.base, clusterOrigin).subscribe("system")); n.Notice == nil || !strings.HasPrefix(n.Notice.Message, "PACS") {
		t.Fatalf("a user connecting later got %+v; want the notice in force", n.Notice)
	}
	if res := late.do("GET", "/api/system-status", nil); res.status != 200 || res.body["notice"] == nil {
		t.Fatalf("GET /api/system-status = %d %s", res.status, res.raw)
	}
	if res := admin.do("DELETE", "/api/admin/system-status", nil); res.status != 204 {
		t.Fatalf("clear = %d %s", res.status, res.raw)
	}
	f, _ = s.await("the clearing on node B", next, func(f wire.ServerFrame) bool { return f.Type == wire.TypeUpdate && f.Topic == "system" })
	if string(f.Data) != `{"notice":null}` {
		t.Fatalf("clearing sent %s", f.Data)
	}
	if res := early.do("POST", "/api/admin/system-status", map[string]any{"level": "info", "message": "hi"}); res.status != 403 {
		t.Fatalf("a clinician posted a notice: %d", res.status)
	}
}

func TestClusterDisplayIsReadOnlyAndRevokedEverywhere(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	a, b := cl.nodes[0], cl.nodes[1]
	_, admin, _ := a.enrolledAdmin("RET")
	referrer := a.login(a.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
	id := referrer.newReferral()

	res := admin.do("POST", "/api/admin/displays", map[string]any{"name": "Bed management office"})
	if res.status != 201 {
		t.Fatalf("create display = %d %s", res.status, res.raw)
	}
	displayID, url := res.body["id"].(string), res.body["url"].(string)
	if !strings.HasPrefix(url, "/display?token=") {
		t.Fatalf("display url %q", url)
	}
	screen := a.client()
	res = screen.do("GET", url, nil)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/wallboard" {
		t.Fatalf("GET %s = %d to %q; want a redirect to the wallboard", "/display", res.status, res.header.Get("Location"))
	}
	if res := screen.do("GET", "/api/wallboard", nil); res.status != 200 || res.body["organisation"].(map[string]any)["ods"] != "RET" {
		t.Fatalf("display's wallboard = %d %s", res.status, res.raw)
	}
	for _, route := range []string{"/api/referrals", "/api/referrals/" + id, "/api/me", "/api/board?pathway=mscc", "/api/notifications"} {
		if res := screen.do("GET", route, nil); res.status != 403 {
			t.Fatalf("display GET %s = %d; want 403", route, res.status)
		}
	}
	if res := screen.do("POST", "/api/referrals/"+id+"/messages", map[string]any{"ref": "x", "body": "hi"}); res.status != 403 {
		t.Fatalf("display posted a message: %d", res.status)
	}
	s := dialSock(t, screen, b.base, clusterOrigin)
	if f := s.subscribe("wallboard"); f.Type != wire.TypeSnapshot {
		t.Fatalf("display's wallboard subscription %+v", f)
	}
	if f := s.subscribe("system"); f.Type != wire.TypeSnapshot {
		t.Fatalf("display's system subscription %+v", f)
	}
	for _, topic := range []string{"referral:" + id, "board:mscc", "user"} {
		if f := s.subscribe(topic); f.Type != wire.TypeError {
			t.Fatalf("display subscribed to %s: %+v", topic, f)
		}
	}
	s.send(map[string]any{"type": "message", "ref": "d1", "referral": id, "body": "from the wall"})
	if f, _ := s.await("refusal of the display's command", 0, func(f wire.ServerFrame) bool { return f.Type == wire.TypeError && f.Ref == "d1" }); f.Code != string(rooms.CodeForbidden) {
		t.Fatalf("display's command answered %+v; want forbidden", f)
	}
	if es := a.audit(rooms.AuditFilter{ActorID: rooms.DisplayPrefix + displayID, Outcome: rooms.OutcomeDenied}); len(es) < 5 {
		t.Fatalf("%d refusals of the display audited; want every one", len(es))
	}
	if res := admin.do("DELETE", "/api/admin/displays/"+displayID, nil); res.status != 200 {
		t.Fatalf("revoke = %d %s", res.status, res.raw)
	}
	if code := s.closeStatus(); code != 4001 {
		t.Fatalf("revoked display's socket on node B closed with %d; want 4001", code)
	}
	if res := screen.do("GET", "/api/wallboard", nil); res.status != 401 {
		t.Fatalf("revoked display read the wallboard: %d", res.status)
	}
	if res := screen.do("GET", url, nil); res.status != 404 {
		t.Fatalf("revoked display link = %d; want 404", res.status)
	}
}

func TestWallboardIsLiveAndCarriesNoIdentifiers(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		bm := e.login(e.user("RET", rooms.UserActive, rooms.RoleBedManager).Email)
		spec := e.login(e.user("RET", rooms.UserActive, rooms.RoleSpecialist).Email)
		referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
		s := dialSock(t, bm, e.base, e.base)
		first := data[rooms.Wallboard](t, s.subscribe("wallboard"))
		if first.AwaitingBed["spinal"] != 0 || first.OPEL != nil {
			t.Fatalf("empty wallboard %+v", first)
		}
		id := referrer.newReferral()
		for _, step := range []map[string]any{{"ref": "t1", "to": "in_triage"}, {"ref": "t2", "to": "accepted", "outcome": map[string]any{"bed_type": "spinal"}}} {
			if res := spec.do("POST", "/api/referrals/"+id+"/transitions", step); res.status != 200 {
				t.Fatalf("move = %d %s", res.status, res.raw)
			}
		}
		f, next := s.await("awaiting a spinal bed", 0, func(f wire.ServerFrame) bool {
			return f.Type == wire.TypeUpdate && data[rooms.Wallboard](t, f).AwaitingBed["spinal"] == 1
		})
		for _, secret := range []string{"9434765919", "Test Patient", "1950-01-01"} {
			if strings.Contains(string(f.Data), secret) {
				t.Fatalf("wallboard carries %q: %s", secret, f.Data)
			}
		}
		if w := data[rooms.Wallboard](t, f); len(w.Items) != 1 || w.Items[0].Initials != "TP" || w.Items[0].BedType != "spinal" {
			t.Fatalf("wallboard items %+v", w.Items)
		}
		if res := bm.do("PUT", "/api/wallboard/opel", map[string]any{"level": 7}); res.status != 400 {
			t.Fatalf("OPEL 7 = %d", res.status)
		} else if code, field := res.errorField(); code != "invalid" || field != "level" {
			t.Fatalf("OPEL 7 refused as %s/%s", code, field)
		}
		if res := referrer.do("PUT", "/api/wallboard/opel", map[string]any{"level": 3}); res.status != 403 {
			t.Fatalf("a referrer set the OPEL level: %d", res.status)
		}
		if res := bm.do("PUT", "/api/wallboard/opel", map[string]any{"level": 3, "note": "ED full, two spinal beds closed"}); res.status != 200 {
			t.Fatalf("set OPEL = %d %s", res.status, res.raw)
		}
		f, _ = s.await("OPEL 3", next, func(f wire.ServerFrame) bool {
			w := data[rooms.Wallboard](t, f)
			return f.Type == wire.TypeUpdate && w.OPEL != nil && w.OPEL.Level == 3
		})
		if res := referrer.do("GET", "/api/wallboard", nil); res.status != 403 {
			t.Fatalf("a referring clinician read the receiving wallboard: %d", res.status)
		}
	})
}

func TestNotificationsAndAuditTrailOverREST(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		coord := e.user("RET", rooms.UserActive, rooms.RoleCoordinator)
		cc := e.login(coord.Email)
		referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
		s := dialSock(t, cc, e.base, e.base)
		if f := data[rooms.UserFeed](t, s.subscribe("user")); f.Unread != 0 {
			t.Fatalf("user feed snapshot %+v", f)
		}
		id := referrer.newReferral()
		f, _ := s.await("the submission's notification", 0, func(f wire.ServerFrame) bool { return f.Type == wire.TypeUpdate && f.Topic == "user" })
		if u := data[rooms.UserUpdate](t, f); u.Notification == nil || u.Notification.ReferralID != id || u.Notification.Kind != rooms.NotifySubmitted {
			t.Fatalf("live notification %s", f.Data)
		}
		res := cc.do("GET", "/api/notifications?unread=true", nil)
		if res.status != 200 || res.body["unread"].(float64) != 1 {
			t.Fatalf("GET /api/notifications = %d %s", res.status, res.raw)
		}
		nid := res.body["notifications"].([]any)[0].(map[string]any)["id"].(string)
		if res := cc.do("GET", "/api/notifications?unread=maybe", nil); res.status != 400 {
			t.Fatalf("unread=maybe = %d", res.status)
		}
		if res := cc.do("POST", "/api/notifications/read", map[string]any{"up_to": nid}); res.status != 200 || res.body["unread"].(float64) != 0 {
			t.Fatalf("read = %d %s", res.status, res.raw)
		}
		if res := cc.do("POST", "/api/notifications/read", map[string]any{"ids": []string{"x\u0000"}}); res.status != 400 {
			t.Fatalf("bad id = %d", res.status)
		}

		for range 3 {
			if res := cc.do("GET", "/api/referrals/"+id, nil); res.status != 200 {
				t.Fatalf("view = %d", res.status)
			}
		}
		_, admin, _ := e.enrolledAdmin("RET")
		res = admin.do("GET", "/api/admin/audit?referral="+id+"&limit=2", nil)
		if res.status != 200 || len(res.body["entries"].([]any)) != 2 || res.body["next"] == "" {
			t.Fatalf("audit page = %d %s", res.status, res.raw)
		}
		res2 := admin.do("GET", "/api/admin/audit?referral="+id+"&limit=2&cursor="+res.body["next"].(string), nil)
		if res2.status != 200 || len(res2.body["entries"].([]any)) == 0 {
			t.Fatalf("second audit page = %d %s", res2.status, res2.raw)
		}
		if res := admin.do("GET", "/api/admin/audit?from=yesterday", nil); res.status != 400 {
			t.Fatalf("from=yesterday = %d", res.status)
		} else if _, field := res.errorField(); field != "from" {
			t.Fatalf("from=yesterday names %q", field)
		}
		req, _ := http.NewRequest("GET", e.base+"/api/admin/audit?referral="+id, nil)
		req.Header.Set("Accept", "text/csv")
		resp, err := admin.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.HasPrefix(lines[0], "id,at,actor_id") || len(lines) < 3 {
			t.Fatalf("CSV export = %d %s: %q", resp.StatusCode, resp.Header.Get("Content-Type"), lines)
		}
		if res := cc.do("GET", "/api/admin/audit", nil); res.status != 403 {
			t.Fatalf("a coordinator read the audit trail: %d", res.status)
		}
	})
}

// A refused view of another organisation's referral is in the viewer's
// organisation's audit trail without the patient, exactly like a view of a
// referral that does not exist.
func TestAuditTrailShowsNoPatientOfAnotherOrganisation(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
		id := referrer.newReferral()
		outsider := e.login(e.user("RBL", rooms.UserActive, rooms.RoleClinician).Email)
		for _, path := range []string{"/api/referrals/" + id, "/api/referrals/" + rooms.NewID()} {
			if res := outsider.do("GET", path, nil); res.status != 404 {
				t.Fatalf("outsider GET %s = %d", path, res.status)
			}
		}
		if res := outsider.do("POST", "/api/referrals/"+id+"/messages", map[string]any{"ref": "m", "body": "hi"}); res.status != 404 {
			t.Fatalf("outsider message = %d", res.status)
		}
		_, admin, _ := e.enrolledAdmin("RBL")
		res := admin.do("GET", "/api/admin/audit?outcome=denied", nil)
		if res.status != 200 {
			t.Fatalf("audit = %d %s", res.status, res.raw)
		}
		entries := res.body["entries"].([]any)
		if len(entries) < 3 {
			t.Fatalf("%d denied entries in RBL's trail; want the outsider's three", len(entries))
		}
		for _, x := range entries {
			if nhs := x.(map[string]any)["patient_nhs_number"]; nhs != nil && nhs != "" {
				t.Fatalf("RBL's trail names a patient of a referral RBL may not see: %v", x)
			}
		}
	})
}
