package realtime

import (
	"bytes"
	"testing"

	"patientpass/hub/wire"
)

// A snapshot or update frame built around its data is byte for byte the
// frame encoding/json makes of the same wire.ServerFrame.
func TestDataFrameIsTheEncodedFrame(t *testing.T) {
	data := appendJSON(nil, map[string]any{"items": []any{map[string]any{"id": "r1", "note": "<b> & \"quoted\" \u2028 é"}}, "n": 2})
	for _, c := range []struct{ typ, topic string }{
		{wire.TypeUpdate, "board:mscc"},
		{wire.TypeSnapshot, "wallboard"},
		{wire.TypeUpdate, "user:0b9c-ab"},
		{wire.TypeUpdate, "board:\"odd\\" + "\x01é"}, // falls back to the encoder
	} {
		got := dataFrame(c.typ, c.topic, data)
		want := EncodeFrame(wire.ServerFrame{Type: c.typ, Topic: c.topic, Data: data})
		if !bytes.Equal(got, want) {
			t.Errorf("%s %q:\n got %s\nwant %s", c.typ, c.topic, got, want)
		}
	}
}
