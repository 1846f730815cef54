package realtime

import (
	"encoding/binary"
	"errors"
	"time"
)

// An envelope is what the hub sends through the broker. The broker is only
// a wake-up: an event envelope lets other nodes deliver without reading the
// store, and one that is lost is repaired from it.
//
// It is binary so that a node can skip its own publications and route the
// others by reading a few header bytes, and so that an event's frame rides
// inside it as the very bytes local subscribers were sent: nobody decodes
// or re-encodes JSON between the commit and the socket.
//
//	kind (1 byte) | len(node) (1) | node | body
//
// with the body, by kind:
//
//	event:    seq (8, big-endian) | commit time, Unix µs (8) | frame
//	update:   frame (a snapshot feed's update frame)
//	ordered:  len(key) (1) | key | seq (8) | frame (an update about key as
//	          of seq; an older one about the same key is dropped)
//	presence: query (1: 0 or 1) | JSON list of wire.Person
//	typing:   len(user id) (1) | user id | frame
//	end:      len(session id) (1) | session id | len(user id) (1) | user id
type envelope struct {
	kind      byte
	node      string
	seq       int64
	at        time.Time
	query     bool
	user      string // typing: the typist; end: the user whose sessions end; ordered: the key
	sessionID string
	// body is the frame (event, update, typing) or the presence list; it
	// aliases the payload, so it is shared, never changed.
	body []byte
}

const (
	kindEvent    byte = 'e'
	kindUpdate   byte = 'u'
	kindOrdered  byte = 'o'
	kindPresence byte = 'p'
	kindTyping   byte = 't'
	kindEnd      byte = 'x'
)

var errBadEnvelope = errors.New("malformed broker envelope")

// header starts an envelope of kind from node, with room for n more bytes.
func header(kind byte, node string, n int) []byte {
	b := make([]byte, 0, 2+len(node)+n)
	b = append(b, kind, byte(len(node)))
	return append(b, node...)
}

// fromNode reports whether payload was published by node, reading only its
// header.
func fromNode(payload []byte, node string) bool {
	return len(payload) >= 2+len(node) && int(payload[1]) == len(node) && string(payload[2:2+len(node)]) == node
}

func appendShort(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func readShort(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

// decodeEnvelope reads an envelope's header; body aliases payload.
func decodeEnvelope(payload []byte) (envelope, error) {
	if len(payload) < 2 {
		return envelope{}, errBadEnvelope
	}
	env := envelope{kind: payload[0]}
	node, rest, ok := readShort(payload[1:])
	if !ok {
		return envelope{}, errBadEnvelope
	}
	env.node = node
	switch env.kind {
	case kindEvent:
		if len(rest) < 16 {
			return envelope{}, errBadEnvelope
		}
		env.seq = int64(binary.BigEndian.Uint64(rest))
		env.at = time.UnixMicro(int64(binary.BigEndian.Uint64(rest[8:])))
		env.body = rest[16:]
	case kindUpdate:
		env.body = rest
	case kindOrdered:
		if env.user, rest, ok = readShort(rest); !ok || len(rest) < 8 {
			return envelope{}, errBadEnvelope
		}
		env.seq, env.body = int64(binary.BigEndian.Uint64(rest)), rest[8:]
	case kindPresence:
		if len(rest) < 1 {
			return envelope{}, errBadEnvelope
		}
		env.query, env.body = rest[0] == 1, rest[1:]
	case kindTyping:
		if env.user, env.body, ok = readShort(rest); !ok {
			return envelope{}, errBadEnvelope
		}
	case kindEnd:
		if env.sessionID, rest, ok = readShort(rest); !ok {
			return envelope{}, errBadEnvelope
		}
		if env.user, _, ok = readShort(rest); !ok {
			return envelope{}, errBadEnvelope
		}
	default:
		return envelope{}, errBadEnvelope
	}
	return env, nil
}
