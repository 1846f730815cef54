package webhooks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"patientpass/rooms"
)

// errRefused is a connection the destination rules refused.
var errRefused = errors.New("destination refused")

// refusedAddr is the address a connection was refused, in the error.
type refusedAddr struct{ addr netip.Addr }

func (r refusedAddr) Error() string {
	return fmt.Sprintf("%s: %s is not a public address and is not on PATIENTPASS_WEBHOOK_ALLOW", errRefused, r.addr)
}

func (r refusedAddr) Unwrap() error { return errRefused }

// guardedDial dials addr ("host:port" of the URL) for dest's rules: a host
// on the allow list by name anywhere; any other only at an address
// AllowsAddr takes, checked on the address the socket is about to connect
// to (Control), after resolution, so a name that resolves to a private
// address when dialled, whatever it resolved to at registration, is
// refused.
func guardedDial(dest *rooms.WebhookDestinations, connectTimeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
		if !dest.AllowsHost(host) {
			d.Control = func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil {
					return fmt.Errorf("%w: cannot read address %q", errRefused, address)
				}
				if !dest.AllowsAddr(ap.Addr()) {
					return refusedAddr{ap.Addr()}
				}
				return nil
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// newClient returns the HTTP client deliveries go through: connections by
// guardedDial only (no proxy from the environment, which would connect on
// our behalf to anywhere), no redirects followed (a 3xx is a failed
// attempt), and each attempt bounded by timeout.
func newClient(dest *rooms.WebhookDestinations, connectTimeout, timeout time.Duration) *http.Client {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           guardedDial(dest, connectTimeout),
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   connectTimeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
