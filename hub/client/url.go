package client

import (
	"fmt"
	"net/url"
)

// webSocketURL turns Options.URL into the endpoint to dial. Tests and the
// load tool know a node by its base URL, so http(s) is mapped to ws(s), and
// a URL without a path gets the protocol's /ws path; any other path is
// kept, for a node mounted under a prefix.
func webSocketURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("websocket url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("websocket url %q: scheme must be ws, wss, http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("websocket url %q: no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = "/ws", ""
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// originOf is the Origin a browser on the server's own pages would send:
// the http(s) scheme and host of the WebSocket URL, without a path.
func originOf(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host
}
