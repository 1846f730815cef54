package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"patientpass/hub/totp"
)

// browser is one logged-in user speaking the REST API, as a browser would:
// a cookie jar, JSON bodies and the Origin of the node it speaks to (each
// node refuses state-changing requests from any origin but its public URL).
type browser struct {
	base   string
	origin string
	http   *http.Client
}

func newBrowser(base, origin string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{base: base, origin: origin, http: &http.Client{Jar: jar, Timeout: 60 * time.Second}}
}

// apiError is a refusal from the API.
type apiError struct {
	Method, Path string
	Status       int
	Code, Field  string
	Message      string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	return s
}

// do sends body as JSON and decodes the answer into out unless it is an
// error, which it returns as an *apiError.
func (b *browser) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", b.origin)
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		_ = json.Unmarshal(raw, &e)
		return &apiError{Method: method, Path: path, Status: resp.StatusCode, Code: e.Error.Code, Field: e.Error.Field, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// login starts a session; secret, when set, supplies the TOTP code. A code
// is accepted once, so when an earlier run used this step's code the login
// waits for the next step and tries again.
func (b *browser) login(ctx context.Context, email, password, secret string) error {
	for attempt := 0; ; attempt++ {
		body := map[string]string{"email": email, "password": password}
		if secret != "" {
			code, err := totp.Code(secret, time.Now())
			if err != nil {
				return fmt.Errorf("TOTP secret: %w", err)
			}
			body["totp"] = code
		}
		err := b.do(ctx, "POST", "/api/session", body, nil)
		var ae *apiError
		if err == nil || secret == "" || attempt > 0 || !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			return err
		}
		wait := time.Until(time.Unix((totp.Step(time.Now())+1)*30, 0)) + time.Second
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// cookies are the session cookies the browser holds for its node.
func (b *browser) cookies() []*http.Cookie {
	u, _ := url.Parse(b.base)
	return b.http.Jar.Cookies(u)
}

// fixture is what a run sets up through the API: logged-in users and
// referrals of its own.
type fixture struct {
	// users holds each load user's sessions: a server takes at most a few
	// sockets per session (a browser's tabs), so a user with many clients
	// logs in several times.
	users    [][]*browser
	referrer *browser
	rooms    []string // referral IDs
}

// session is the session the i-th client uses: clients go round the users,
// and each user's clients round its sessions.
func (f *fixture) session(i int) *browser {
	u := f.users[i%len(f.users)]
	return u[(i/len(f.users))%len(u)]
}

// setUp registers cfg.Users specialists at the demo admin's organisation,
// approves them, logs each in, and has the referrer open cfg.Rooms
// referrals to that organisation, which its specialists all see.
func setUp(ctx context.Context, cfg config, runID string, logf func(string, ...any)) (*fixture, error) {
	base, origin := cfg.URLs[0], cfg.Origins[0]
	admin := newBrowser(base, origin)
	if err := admin.login(ctx, cfg.AdminEmail, cfg.Password, cfg.TOTPSecret); err != nil {
		return nil, fmt.Errorf("log in as the admin %s: %w", cfg.AdminEmail, err)
	}
	var me struct {
		User struct{ Organisation string } `json:"user"`
	}
	if err := admin.do(ctx, "GET", "/api/me", nil, &me); err != nil {
		return nil, err
	}
	org := me.User.Organisation
	referrer := newBrowser(base, origin)
	if err := referrer.login(ctx, cfg.ReferrerEmail, cfg.Password, ""); err != nil {
		return nil, fmt.Errorf("log in as the referrer %s: %w", cfg.ReferrerEmail, err)
	}

	f := &fixture{users: make([][]*browser, cfg.Users), referrer: referrer, rooms: make([]string, cfg.Rooms)}
	perUser := (cfg.Clients + cfg.Users - 1) / cfg.Users
	sessions := (perUser + socketsPerSession - 1) / socketsPerSession
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4) // password hashing is deliberately slow; do not starve the node
	for i := range cfg.Users {
		g.Go(func() error {
			u, err := newUser(gctx, admin, cfg, org, runID, i, sessions)
			f.users[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	logf("setup: %d users registered, approved and logged in, %d sessions each (%s)", cfg.Users, sessions, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range cfg.Rooms {
		g.Go(func() error {
			var out struct{ ID string }
			err := referrer.do(gctx, "POST", "/api/referrals", referralBody(fmt.Sprintf("loadtest-%s-%d", runID, i)), &out)
			f.rooms[i] = out.ID
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("open referrals: %w", err)
	}
	logf("setup: %d referrals opened (%s)", cfg.Rooms, time.Since(start).Round(time.Millisecond))
	return f, nil
}

// socketsPerSession is how many clients share one session: under the
// server's limit of sockets per session (16 by default).
const socketsPerSession = 12

// newUser registers and approves the i-th load user, and logs it in
// sessions times. Base URLs are spread over the nodes so every node serves
// some of the API.
func newUser(ctx context.Context, admin *browser, cfg config, org, runID string, i, sessions int) ([]*browser, error) {
	email := fmt.Sprintf("loadtest-%s-%d@loadtest.invalid", runID, i)
	password := "loadtest " + runID + " " + randomDigits(12)
	var reg struct{ ID string }
	for attempt := 0; ; attempt++ {
		err := admin.do(ctx, "POST", "/api/register", map[string]string{
			"name": fmt.Sprintf("Load Test %d", i), "email": email, "password": password,
			"professional_body": "GMC", "registration_number": randomDigits(7),
			"organisation": org, "role": "specialist",
		}, &reg)
		var ae *apiError
		if err != nil && attempt < 3 && errors.As(err, &ae) && ae.Status == http.StatusConflict {
			continue // the random registration number is taken; draw another
		}
		if err != nil {
			return nil, fmt.Errorf("register load user %d: %w", i, err)
		}
		break
	}
	if err := admin.do(ctx, "POST", "/api/admin/users/"+reg.ID+"/approve", nil, nil); err != nil {
		return nil, fmt.Errorf("approve load user %d: %w", i, err)
	}
	var bs []*browser
	for k := range sessions {
		n := (i + k) % len(cfg.URLs)
		u := newBrowser(cfg.URLs[n], cfg.Origins[n])
		if err := u.login(ctx, email, password, ""); err != nil {
			return nil, fmt.Errorf("log in load user %d: %w", i, err)
		}
		bs = append(bs, u)
	}
	return bs, nil
}

func randomDigits(n int) string {
	var sb strings.Builder
	for range n {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		sb.WriteByte(byte('0' + d.Int64()))
	}
	return sb.String()
}

// referralBody is a complete MSCC referral of a made-up patient; the NHS
// number is a valid test number, not a person's.
func referralBody(ref string) map[string]any {
	return map[string]any{
		"ref": ref, "pathway": "mscc", "priority": "routine", "submit": true,
		"patient": map[string]any{"nhs_number": "943 476 5919", "name": "Load Test", "date_of_birth": "1950-01-01", "sex": "female"},
		"form": map[string]any{
			"primary_cancer": "Prostate", "spinal_levels": "T6–T8", "neuro_limb_weakness": false,
			"neuro_bladder_bowel": false, "ambulatory_status": "independent", "steroids_given": true,
			"spinal_precautions": true, "sins_score": 9,
		},
		"contact_phone": "01244 365000", "consultant_discussed": true,
	}
}

// storedEvent is the part of a stored event the checks read.
type storedEvent struct {
	Seq  int64           `json:"seq"`
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
}

// events reads every stored event of a referral, the ground truth the
// clients are checked against.
func (b *browser) events(ctx context.Context, referral string) ([]storedEvent, error) {
	var all []storedEvent
	for after := int64(0); ; {
		var page struct {
			Events []storedEvent `json:"events"`
			Head   int64         `json:"head"`
		}
		if err := b.do(ctx, "GET", fmt.Sprintf("/api/referrals/%s/events?after=%d&limit=1000", referral, after), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Events...)
		if len(page.Events) == 0 || page.Events[len(page.Events)-1].Seq >= page.Head {
			return all, nil
		}
		after = page.Events[len(page.Events)-1].Seq
	}
}

// residentMemoryMetrics name the process's resident memory in a node's
// metrics: the standard Prometheus process collector's name, and the name
// nodes used before they served their metrics with client_golang.
var residentMemoryMetrics = []string{"process_resident_memory_bytes", "patientpass_process_resident_memory_bytes"}

// serverMemory reads a node's resident memory from its metrics endpoint;
// ok is false when the endpoint does not answer or does not report it.
func serverMemory(ctx context.Context, endpoint string) (rss int64, ok bool) {
	return metricValue(ctx, endpoint, residentMemoryMetrics...)
}

var metricsClient = &http.Client{Timeout: 10 * time.Second}

// metricValue reads one unlabelled metric from a metrics endpoint in the
// Prometheus text format: the first of names that it reports.
func metricValue(ctx context.Context, endpoint string, names ...string) (int64, bool) {
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint, nil)
	if err != nil {
		return 0, false
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false // a node that moved its metrics off the public listener answers 404 here
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return parseMetric(string(raw), names...)
}

// parseMetric finds the value of the first of names in a text exposition.
func parseMetric(text string, names ...string) (int64, bool) {
	values := make(map[string]float64, len(names))
	for line := range strings.SplitSeq(text, "\n") {
		for _, name := range names {
			v, ok := strings.CutPrefix(line, name+" ")
			if !ok {
				continue
			}
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				values[name] = f
			}
		}
	}
	for _, name := range names {
		if f, ok := values[name]; ok {
			return int64(f), true
		}
	}
	return 0, false
}
