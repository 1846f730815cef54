package rooms

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// WebhookDestinations decides where webhooks may be sent (SPEC §10): to
// https URLs whose hosts have public addresses only, unless the host, or
// the address, is on the allow list (PATIENTPASS_WEBHOOK_ALLOW), which also
// lets a listed host take plain http. A registration is checked against it
// (CheckURL) and so is every connection the dispatcher makes (AllowsHost,
// AllowsAddr), on the address actually dialled, so a name that resolves to
// a public address at registration and to a private one later gets nowhere.
// The zero value allows no exception.
type WebhookDestinations struct {
	hosts    map[string]bool // lower-case host names and IP literals
	prefixes []netip.Prefix
	// Lookup resolves a host name at registration; net.DefaultResolver
	// when nil. Tests set it to play a resolver that lies.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// ParseWebhookAllow parses an allow list: host names, IP addresses and
// CIDR prefixes, separated by commas.
func ParseWebhookAllow(list string) (*WebhookDestinations, error) {
	d := &WebhookDestinations{hosts: map[string]bool{}}
	for item := range strings.SplitSeq(list, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		switch {
		case item == "":
			continue
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8", item)
			}
			d.prefixes = append(d.prefixes, p.Masked())
		default:
			host := strings.TrimSuffix(strings.TrimPrefix(item, "["), "]")
			if a, err := netip.ParseAddr(host); err == nil {
				d.prefixes = append(d.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				host = a.Unmap().String()
			} else if !validHostName(host) {
				return nil, fmt.Errorf("%q is not a host name, an IP address or a CIDR prefix", item)
			}
			d.hosts[host] = true
		}
	}
	return d, nil
}

// validHostName reports whether s is a DNS name: labels of letters, digits
// and hyphens.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// AllowsHost reports whether host, a URL's host without port, is on the
// allow list by name (or as an address literal listed or inside a listed
// prefix): its connections are not checked further.
func (d *WebhookDestinations) AllowsHost(host string) bool {
	if d == nil {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if a, err := netip.ParseAddr(host); err == nil {
		return d.listed(a.Unmap())
	}
	return d.hosts[strings.TrimSuffix(host, ".")]
}

// AllowsAddr reports whether a connection to a may be made: a is a public
// unicast address, or the allow list takes it in.
func (d *WebhookDestinations) AllowsAddr(a netip.Addr) bool {
	a = a.Unmap()
	return PublicAddr(a) || d != nil && d.listed(a)
}

func (d *WebhookDestinations) listed(a netip.Addr) bool {
	for _, p := range d.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// notPublic are ranges that are neither private nor loopback by netip's
// reckoning but reach no one on the internet: "this network", shared
// address space (carrier NAT), IETF protocol assignments, benchmarking,
// documentation, reserved and broadcast, the IPv4/IPv6 translation prefix
// (which maps onto private IPv4) and IPv6 documentation.
var notPublic = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "64:ff9b::/96", "64:ff9b:1::/48", "2001:db8::/32", "100::/64"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// globalUnicast6 is IPv6's global unicast space; tunnels into IPv4 (6to4,
// Teredo) inside it could reach private IPv4, so they are not public here.
var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	tunnels6       = []netip.Prefix{netip.MustParsePrefix("2002::/16"), netip.MustParsePrefix("2001::/32")}
)

// PublicAddr reports whether a is a public unicast address: not loopback,
// private, link-local (169.254.169.254, the cloud metadata service, is
// one), unique-local, multicast or unspecified; an IPv6 address only in
// the global unicast space (2000::/3), without a zone, and not a tunnel
// into IPv4 (6to4, Teredo): IPv4-compatible and site-local addresses are
// not public.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	if a.Is6() && (a.Zone() != "" || !globalUnicast6.Contains(a.WithZone(""))) {
		return false
	}
	for _, p := range tunnels6 {
		if p.Contains(a) {
			return false
		}
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// maxWebhookURL bounds a destination URL.
const maxWebhookURL = 2000

// lookupTimeout bounds the resolution of a destination at registration.
const lookupTimeout = 5 * time.Second

// CheckURL parses a destination and refuses it, as invalid input in field
// "url", unless it is an absolute https URL (http for a host on the allow
// list) without credentials or fragment, whose host resolves only to
// addresses AllowsAddr takes, or is itself on the allow list.
func (d *WebhookDestinations) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	if err := ruleWebhookURL.check("url", raw); err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return nil, Invalid("url", "the destination must be an absolute URL such as https://ehr.example.nhs.uk/hooks")
	}
	host := u.Hostname()
	switch {
	case u.User != nil:
		return nil, Invalid("url", "the destination must not carry a user name or password; authenticate the webhook by its signature")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, Invalid("url", "the destination must not have a fragment (#…)")
	case u.Scheme != "https" && !(u.Scheme == "http" && d.AllowsHost(host)):
		return nil, Invalid("url", "the destination must be an https URL (plain http only for a host on PATIENTPASS_WEBHOOK_ALLOW)")
	case host == "":
		return nil, Invalid("url", "the destination must name a host")
	}
	if port := u.Port(); port != "" {
		if n, err := netip.ParseAddrPort("0.0.0.0:" + port); err != nil || n.Port() == 0 {
			return nil, Invalid("url", "the destination's port must be a number from 1 to 65535")
		}
	}
	if d.AllowsHost(host) {
		return u, nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		if !d.AllowsAddr(a) {
			return nil, Invalid("url", "the destination is a loopback, private, link-local or otherwise non-public address; list it in PATIENTPASS_WEBHOOK_ALLOW to allow it")
		}
		return u, nil
	}
	if !validHostName(strings.ToLower(host)) {
		return nil, Invalid("url", "the destination's host is not a valid host name")
	}
	lookup := d.lookup()
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := lookup(lctx, host)
	if err != nil || len(addrs) == 0 {
		return nil, Invalid("url", "the destination's host %q could not be resolved", host)
	}
	for _, a := range addrs {
		if !d.AllowsAddr(a) {
			return nil, Invalid("url", "the destination's host resolves to a loopback, private, link-local or otherwise non-public address; list it in PATIENTPASS_WEBHOOK_ALLOW to allow it")
		}
	}
	return u, nil
}

func (d *WebhookDestinations) lookup() func(ctx context.Context, host string) ([]netip.Addr, error) {
	if d != nil && d.Lookup != nil {
		return d.Lookup
	}
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
}
