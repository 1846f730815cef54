package client

import (
	"context"
	"errors"
	"testing"

	"patientpass/hub/wire"
)

// newTestClient builds a client that never connects, so the bookkeeping can
// be driven frame by frame through handleFrame.
func newTestClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.URL == "" {
		opts.URL = "ws://127.0.0.1:1/ws"
	}
	c, err := newClient(opts)
	if err != nil {
		t.Fatalf("newClient: %v", err)
	}
	t.Cleanup(c.cancel)
	return c
}

func TestCloseFailsWaitingAndLaterCalls(t *testing.T) {
	c := newTestClient(t, Options{})
	cmd, ref, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Referral: "r1", Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.addSubscription("referral:r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.awaitCommand(context.Background(), ref, cmd); !errors.Is(err, ErrClosed) {
		t.Errorf("waiting Send after Close: %v, want ErrClosed", err)
	}
	if _, err := c.awaitSubscription(context.Background(), "referral:r1", sub); !errors.Is(err, ErrClosed) {
		t.Errorf("waiting Subscribe after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Message(context.Background(), "r1", "again"); !errors.Is(err, ErrClosed) {
		t.Errorf("Message after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Subscribe(context.Background(), "referral:r2", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if err := c.Typing("r1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Typing after Close: %v, want ErrClosed", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

func TestPermanentStopFailsCallsWithItsReason(t *testing.T) {
	c := newTestClient(t, Options{})
	cmd, ref, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Referral: "r1", Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	refused := &HandshakeError{Status: 401}
	c.stop(refused)
	if _, err := c.awaitCommand(context.Background(), ref, cmd); err != refused {
		t.Errorf("waiting Send after stop: %v, want %v", err, refused)
	}
	if err := c.Err(); err != refused {
		t.Errorf("Err = %v, want %v", err, refused)
	}
	if err := c.Close(); err != nil || c.Err() != refused {
		t.Errorf("Close after stop = %v and Err = %v, want nil and the stop reason", err, c.Err())
	}
}

func TestFireAndForgetFramesNeedAConnection(t *testing.T) {
	c := newTestClient(t, Options{})
	if err := c.Typing("r1"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Typing while disconnected: %v, want ErrNotConnected", err)
	}
	if err := c.Read(context.Background(), "r1", 4); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Read while disconnected: %v, want ErrNotConnected", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Read(ctx, "r1", 4); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with an ended context: %v, want context.Canceled", err)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&HandshakeError{Status: 401}, "websocket handshake refused: HTTP 401 Unauthorized"},
		{&ServerError{Code: "conflict", Message: "the plan changed"}, "server refused: conflict: the plan changed"},
		{&ServerError{Code: "invalid", Message: "too long", Field: "body"}, "server refused: invalid: too long (body)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
