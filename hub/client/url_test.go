package client

import (
	"net/http"
	"testing"
)

func TestWebSocketURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ws endpoint kept", "ws://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"},
		{"wss endpoint kept", "wss://pass.example.nhs.uk/ws", "wss://pass.example.nhs.uk/ws"},
		{"http base gets ws and /ws", "http://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"},
		{"https base gets wss and /ws", "https://pass.example.nhs.uk", "wss://pass.example.nhs.uk/ws"},
		{"root path becomes /ws", "http://127.0.0.1:8080/", "ws://127.0.0.1:8080/ws"},
		{"ws without path gets /ws", "ws://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"},
		{"http endpoint keeps its path", "http://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"},
		{"prefix kept", "https://example.org/pass/ws", "wss://example.org/pass/ws"},
		{"query kept, fragment dropped", "http://h:1/ws?node=2#x", "ws://h:1/ws?node=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webSocketURL(tt.in)
			if err != nil {
				t.Fatalf("webSocketURL(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("webSocketURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestWebSocketURLRefusesWhatCannotBeDialled(t *testing.T) {
	for _, in := range []string{"", "127.0.0.1:8080", "ftp://h/ws", "http://", "ws:///ws", "http://h:1/%zz"} {
		if got, err := webSocketURL(in); err == nil {
			t.Errorf("webSocketURL(%q) = %q, want an error", in, got)
		}
	}
}

func TestOriginDefaultsToTheServersOwnURL(t *testing.T) {
	tests := []struct{ url, want string }{
		{"ws://127.0.0.1:8080/ws", "http://127.0.0.1:8080"},
		{"https://pass.example.nhs.uk", "https://pass.example.nhs.uk"},
		{"wss://pass.example.nhs.uk:8443/pass/ws", "https://pass.example.nhs.uk:8443"},
	}
	for _, tt := range tests {
		c := newTestClient(t, Options{URL: tt.url})
		if got := c.dialOpts.HTTPHeader.Get("Origin"); got != tt.want {
			t.Errorf("Origin for %s = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestHandshakeHeaders(t *testing.T) {
	extra := http.Header{"Cookie": {"theme=dark"}, "X-Test": {"1"}}
	c := newTestClient(t, Options{
		URL:     "http://127.0.0.1:8080",
		Origin:  "https://public.example",
		Header:  extra,
		Cookies: []*http.Cookie{{Name: "session", Value: "abc"}, {Name: "csrf", Value: "xyz"}},
	})
	h := c.dialOpts.HTTPHeader
	if got := h.Get("Origin"); got != "https://public.example" {
		t.Errorf("Origin = %q, want the one given", got)
	}
	if got := h.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark; session=abc; csrf=xyz" {
		t.Errorf("Cookie = %q, want one header with every cookie", got)
	}
	if got := h.Get("X-Test"); got != "1" {
		t.Errorf("X-Test = %q, want the extra header kept", got)
	}
	if got := extra.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark" || extra.Get("Origin") != "" {
		t.Errorf("caller's header was changed: %v", extra)
	}
}
