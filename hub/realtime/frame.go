package realtime

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/wire"
	"patientpass/rooms"
)

// Frame is a server frame waiting for a connection's writer. Data is
// shared: the frame of one event is encoded once and the same bytes go to
// every subscriber and, inside its envelope, to the broker, so nobody may
// change them. At is the commit time of a live event, for the delivery
// latency histogram; Event marks event frames, which are counted.
type Frame struct {
	Data  []byte
	Event bool
	At    time.Time
}

// Disconnect is why the server closes a connection: the close code of SPEC
// §6 and the reason sent with it.
type Disconnect struct {
	Code   websocket.StatusCode
	Reason string
}

// The disconnects of SPEC §6.
var (
	DisconnectSessionEnded = Disconnect{wire.CloseSessionEnded, "session ended"}
	DisconnectForbidden    = Disconnect{wire.CloseForbidden, "forbidden"}
	DisconnectTooSlow      = Disconnect{wire.CloseTooSlow, "too slow; reconnect and resume"}
	DisconnectShutdown     = Disconnect{wire.CloseGoingAway, "server shutting down"}
	DisconnectMisbehaving  = Disconnect{websocket.StatusPolicyViolation, "too many refused frames"}
	DisconnectRateLimited  = Disconnect{websocket.StatusPolicyViolation, "too many frames; slow down"}
	DisconnectTooManyConns = Disconnect{websocket.StatusPolicyViolation, "too many connections for this session"}
)

// encoders are reused: encoding is on the hot path of every delivery.
var encoders = sync.Pool{New: func() any { return new(encoder) }}

type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// appendJSON appends v's JSON, without HTML escaping and without the
// encoder's newline, to dst.
func appendJSON(dst []byte, v any) []byte {
	e := encoders.Get().(*encoder)
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.buf)
		e.enc.SetEscapeHTML(false)
	}
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		panic("encode frame: " + err.Error()) // our own plain structs
	}
	dst = append(dst, bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})...)
	if e.buf.Cap() <= 64<<10 {
		encoders.Put(e)
	}
	return dst
}

// EncodeFrame is the bytes of a server frame, without HTML escaping.
func EncodeFrame(f wire.ServerFrame) []byte { return appendJSON(nil, f) }

// appendEventFrame appends the frame of a stored event on topic to dst:
// {"type":"event","topic":…,"seq":…,"event":{…}}, built around the event's
// own encoding so the event is encoded once.
func appendEventFrame(dst []byte, topic string, e rooms.Event) []byte {
	dst = append(dst, `{"type":"event","topic":`...)
	dst = strconv.AppendQuote(dst, topic) // topics are ASCII: kind, ':' and an id
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"event":`...)
	dst = appendJSON(dst, e)
	return append(dst, '}')
}

// dataFrame is the frame of a snapshot or update (typ) on topic, built
// around data, which must be compact JSON from appendJSON: encoding the
// frame as a wire.ServerFrame would check and compact data all over again,
// for every update of a board on every post.
func dataFrame(typ, topic string, data []byte) []byte {
	if !plainASCII(typ) || !plainASCII(topic) {
		return EncodeFrame(wire.ServerFrame{Type: typ, Topic: topic, Data: data})
	}
	dst := make([]byte, 0, len(`{"type":"","topic":"","data":}`)+len(typ)+len(topic)+len(data))
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","topic":"`...)
	dst = append(dst, topic...)
	dst = append(dst, `","data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// plainASCII reports whether s needs no escaping inside a JSON string, as
// appendJSON writes them: printable ASCII other than quote and backslash.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// EventFrame is the frame of a stored event on topic.
func EventFrame(topic string, e rooms.Event) []byte { return appendEventFrame(nil, topic, e) }

// EncodeJSON is v's JSON without HTML escaping, for a frame's raw fields.
func EncodeJSON(v any) []byte { return appendJSON(nil, v) }
