// Package webhooks delivers the webhooks of SPEC §10 from the outbox the
// room service writes in each command's transaction: a Dispatcher on every
// node leases due messages from the store, POSTs each, signed the Standard
// Webhooks way, to its subscription's URL, and logs every attempt. A
// message waits until the one before it of its subscription and referral
// has been delivered or has finally failed, so receivers see each
// referral's events in seq order; a failed attempt is retried with
// exponential backoff for a day. At least once: a node that dies mid-
// delivery leaves its lease to expire and another node sends the message
// again, with the same webhook-id.
package webhooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"patientpass/rooms"
)

// Store is the outbox as a dispatcher works it (rooms.WebhookStore has it).
type Store interface {
	ClaimWebhookMessages(ctx context.Context, r rooms.WebhookClaimRequest) ([]rooms.WebhookClaim, error)
	FinishWebhookAttempt(ctx context.Context, c rooms.WebhookClaim, d rooms.WebhookDelivery) error
	PruneWebhookDeliveries(ctx context.Context, before time.Time, keep int) (int64, error)
}

// Config configures a Dispatcher. Zero durations take the defaults of SPEC
// §10; tests shorten them.
type Config struct {
	Store Store
	// Destinations are the rules each connection is checked against; nil
	// allows public addresses only.
	Destinations *rooms.WebhookDestinations
	// Clock decides what is due and stamps attempts; the system clock
	// when nil.
	Clock rooms.Clock
	// Node names this process in its leases.
	Node string
	Log  zerolog.Logger

	// Poll is how often the outbox is looked at when nothing is in
	// flight: new messages wait at most this long (1 s).
	Poll time.Duration
	// Backoff is the wait after a first failed attempt, doubled after each
	// further one (1 s), up to MaxBackoff (5 min), for RetryFor from the
	// first attempt (24 h), after which the message is marked failed.
	Backoff, MaxBackoff, RetryFor time.Duration
	// ConnectTimeout bounds connecting, TLS included (5 s), and Timeout a
	// whole attempt (15 s).
	ConnectTimeout, Timeout time.Duration
	// Lease is how long a claimed message is this node's (2 × Timeout):
	// if the node dies, another takes the message once it runs out.
	Lease time.Duration
	// Workers bounds the attempts in flight (16).
	Workers int
}

// maxResponse bounds what is read of a receiver's answer: only its status
// matters, and reading a little lets the connection be reused.
const maxResponse = 4 << 10

// Delivery log retention: attempts older than a week go, and no
// subscription keeps more than logKeep, pruned every pruneEvery.
const (
	logRetention = 7 * 24 * time.Hour
	logKeep      = 1000
	pruneEvery   = time.Hour
)

// Dispatcher delivers the outbox's messages. Run it on every node.
type Dispatcher struct {
	cfg    Config
	client *http.Client

	delivered, retried, failed atomic.Int64
}

// New returns a Dispatcher for cfg.
func New(cfg Config) *Dispatcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Poll, time.Second)
	def(&cfg.Backoff, time.Second)
	def(&cfg.MaxBackoff, 5*time.Minute)
	def(&cfg.RetryFor, 24*time.Hour)
	def(&cfg.ConnectTimeout, 5*time.Second)
	def(&cfg.Timeout, 15*time.Second)
	def(&cfg.Lease, 2*cfg.Timeout)
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Clock == nil {
		cfg.Clock = rooms.SystemClock{}
	}
	return &Dispatcher{cfg: cfg, client: newClient(cfg.Destinations, cfg.ConnectTimeout, cfg.Timeout)}
}

// Stats counts the attempts made so far by outcome.
type Stats struct{ Delivered, Retried, Failed int64 }

// Stats returns the dispatcher's counts.
func (d *Dispatcher) Stats() Stats {
	return Stats{Delivered: d.delivered.Load(), Retried: d.retried.Load(), Failed: d.failed.Load()}
}

// Run delivers until ctx ends, and returns once every attempt it started
// has ended. An attempt cut short by ctx is not logged: its lease runs out
// and the message is sent again, by this node or another.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Each attempt says here when it has ended; there are never more than
	// Workers in flight, so the send never blocks.
	ended := make(chan struct{}, d.cfg.Workers)
	inFlight := 0 // owned by Run
	poll := time.NewTimer(0)
	defer poll.Stop()
	lastPrune := time.Time{}
	failing := false // the store refused the last claim: logged once a streak
	for {
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			d.prune(ctx)
		}
		if free := d.cfg.Workers - inFlight; free > 0 {
			claims, err := d.claim(ctx, free)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				d.cfg.Log.Warn().Err(err).Msg("webhooks: cannot read the outbox")
				failing = true
			case err == nil:
				failing = false
			}
			for _, c := range claims {
				inFlight++
				wg.Go(func() {
					defer func() { ended <- struct{}{} }()
					d.attempt(ctx, c)
				})
			}
		}
		// An attempt that ends may make the next message of its referral
		// due: claim again then, rather than at the next poll.
		poll.Reset(d.cfg.Poll)
		select {
		case <-ctx.Done():
			return
		case <-ended:
			inFlight--
		case <-poll.C:
		}
	drain:
		for {
			select {
			case <-ended:
				inFlight--
			default:
				break drain
			}
		}
	}
}

// claim leases up to n due messages under a fresh lease token.
func (d *Dispatcher) claim(ctx context.Context, n int) ([]rooms.WebhookClaim, error) {
	now := d.cfg.Clock.Now()
	return d.cfg.Store.ClaimWebhookMessages(ctx, rooms.WebhookClaimRequest{
		Lease: d.cfg.Node + ":" + rand.Text(), Now: now, LeaseUntil: now.Add(d.cfg.Lease), Limit: n})
}

func (d *Dispatcher) prune(ctx context.Context) {
	n, err := d.cfg.Store.PruneWebhookDeliveries(ctx, d.cfg.Clock.Now().Add(-logRetention), logKeep)
	switch {
	case err != nil && ctx.Err() == nil:
		d.cfg.Log.Warn().Err(err).Msg("webhooks: cannot prune the delivery log")
	case n > 0:
		d.cfg.Log.Debug().Int64("attempts", n).Msg("webhooks: delivery log pruned")
	}
}

// attempt makes one attempt of c and logs it.
func (d *Dispatcher) attempt(ctx context.Context, c rooms.WebhookClaim) {
	log := d.cfg.Log.With().Str("webhook", c.Webhook.ID).Str("referral", c.Message.ReferralID).
		Int64("seq", c.Message.Seq).Int("attempt", c.Attempts+1).Logger()
	at := d.cfg.Clock.Now()
	began := time.Now()
	status, fault := d.post(ctx, c, at)
	if fault != "" && ctx.Err() != nil {
		return // shutting down: the lease runs out and the message goes again
	}
	rec := rooms.WebhookDelivery{MessageID: c.Message.ID, Type: c.Message.Type, ReferralID: c.Message.ReferralID,
		Seq: c.Message.Seq, Attempt: c.Attempts + 1, At: at, StatusCode: status, Error: fault,
		DurationMS: time.Since(began).Milliseconds(), Payload: c.Message.Payload}
	switch next, retry := d.nextAttempt(c, at); {
	case fault == "":
		rec.Outcome = rooms.DeliveryDelivered
		d.delivered.Add(1)
	case retry:
		rec.Outcome, rec.NextAttemptAt = rooms.DeliveryRetrying, &next
		d.retried.Add(1)
		log.Debug().Int("status", status).Str("error", fault).Time("next", next).Msg("webhooks: attempt failed")
	default:
		rec.Outcome = rooms.DeliveryFailed
		d.failed.Add(1)
		log.Info().Int("status", status).Str("error", fault).Msg("webhooks: message failed after a day of retries")
	}
	// The outcome is logged even when ctx ended meanwhile: a delivery not
	// logged would be sent again.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.cfg.Store.FinishWebhookAttempt(fctx, c, rec); err != nil {
		log.Warn().Err(err).Msg("webhooks: cannot log an attempt; the message goes again once its lease runs out")
	}
}

// nextAttempt is when c is attempted again after a failed attempt at at,
// and false when RetryFor has passed since its event: the wait is Backoff,
// doubled after each failure, at most MaxBackoff, and the last attempt is
// made at the end of RetryFor. The window runs from the event, not from
// the first attempt: a message waiting behind a failing one (seq order)
// ages as it waits, so a receiver that stays down fails a referral's
// messages in about RetryFor, not one RetryFor after another.
func (d *Dispatcher) nextAttempt(c rooms.WebhookClaim, at time.Time) (time.Time, bool) {
	end := c.Message.At.Add(d.cfg.RetryFor)
	if !at.Before(end) {
		return time.Time{}, false
	}
	wait := d.cfg.Backoff
	for range c.Attempts {
		if wait >= d.cfg.MaxBackoff {
			break
		}
		wait *= 2
	}
	next := at.Add(min(wait, d.cfg.MaxBackoff))
	if next.After(end) {
		next = end
	}
	return next, true
}

// post sends c's message, signed at time at, and returns the receiver's
// status and, unless it answered 2xx, a short account of what went wrong
// (never the URL, which may carry a token, nor the body).
func (d *Dispatcher) post(ctx context.Context, c rooms.WebhookClaim, at time.Time) (int, string) {
	key, err := rooms.WebhookKey(c.Webhook.Secret)
	if err != nil {
		return 0, "the subscription's secret is unusable"
	}
	ts := at.Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Webhook.URL, bytes.NewReader(c.Message.Payload))
	if err != nil {
		return 0, "the destination URL is unusable"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "PatientPass-Webhooks/1")
	req.Header.Set("webhook-id", c.Message.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(key, c.Message.ID, ts, c.Message.Payload))
	res, err := d.client.Do(req)
	if err != nil {
		return 0, describe(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxResponse))
	_ = res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, "the receiver answered " + strconv.Itoa(res.StatusCode)
	}
	return res.StatusCode, ""
}

// describe says briefly why a request failed.
func describe(err error) string {
	var (
		ue *url.Error
		re refusedAddr
		oe *net.OpError
		de *net.DNSError
	)
	switch {
	case errors.As(err, &re):
		return re.Error()
	case errors.Is(err, errRefused):
		return errRefused.Error()
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ue) && ue.Timeout():
		return "timed out"
	case errors.As(err, &de):
		return "the destination's host could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before an answer"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "could not connect"
	}
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return fmt.Sprintf("request failed: %s", msg)
}
