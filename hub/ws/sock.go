package ws

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// corkFlush is the most a corked socket buffers before it writes: enough
// for a replay page of small frames in one system call, little enough that
// a burst to a slow client does not hold much more than the kernel's own
// send buffer would.
const corkFlush = 32 << 10

// corkBuffers hold what corked sockets buffer, between a cork and its
// uncork only: an idle socket holds none.
var corkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// sock is the socket under one WebSocket connection: the hijacked
// net.Conn, which coder/websocket reads and writes through its bufio
// buffers, with two things added.
//
// It bounds every write to the socket by the write timeout, with the
// socket's own deadline (the runtime's poller holds its timer), so a peer
// that stops reading fails the write that hangs, and the connection with
// it, whichever goroutine wrote: the writer's frames, its pings and close,
// or a pong written from inside the reader's read.
//
// And it can be corked: while corked, writes are appended to a buffer
// taken from corkBuffers, and uncork writes them in one system call. The
// writer corks around each batch it drains from the queue, and writes its
// frames itself (writeText), so the frames queued while it wrote the last
// batch go out together: one system call per batch, not per frame. A
// control frame coder/websocket writes (a pong the reader answers, say)
// joins the batch, in order, under the same mutex; the uncork
// follows at the end of the batch. Past corkFlush bytes the buffer is
// written early, so a burst's buffer stays bounded.
type sock struct {
	net.Conn
	timeout time.Duration

	mu      sync.Mutex
	corked  bool    // guarded by mu
	pending *[]byte // guarded by mu; from corkBuffers, nil when nothing waits
	err     error   // guarded by mu; the first failed write, which every later write returns
}

// Write writes p to the socket, or buffers it while the socket is corked.
// After a failed write every write fails the same: the peer's stream has
// lost bytes and nothing written after them could be read.
func (s *sock) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if !s.corked {
		return s.writeLocked(p)
	}
	if s.pending != nil && len(*s.pending)+len(p) > corkFlush {
		if err := s.flushLocked(); err != nil {
			return 0, err
		}
	}
	if s.pending == nil && len(p) >= corkFlush {
		return s.writeLocked(p) // a large frame needs no copy to go out whole
	}
	if s.pending == nil {
		s.pending = corkBuffers.Get().(*[]byte)
	}
	*s.pending = append(*s.pending, p...)
	return len(p), nil
}

// writeText writes p as one final, unmasked text frame (RFC 6455 §5.2), the
// frame coder/websocket's Conn.Write makes of it with compression off, for
// the writer's frames: Conn.Write's locks, its message writer's reset and
// its context checks cost a tenth of the node's CPU in a fan-out profile,
// for a header of two to ten bytes. The header and payload go out in one
// call under mu, so that a frame coder/websocket writes meanwhile, which
// reaches the sock as one Write (a pong or a close answered by the reader:
// a control frame, at most 127 bytes, through the 128 B write buffer), can
// never land inside this one.
func (s *sock) writeText(p []byte) error {
	var buf [10]byte
	h := textHeader(buf[:0], len(p))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	n := len(h) + len(p)
	if s.corked && s.pending != nil && len(*s.pending)+n > corkFlush {
		if err := s.flushLocked(); err != nil {
			return err
		}
	}
	// Through the buffer even when not corked: header and payload then
	// leave in one system call, and the header's bytes stay on the stack.
	if s.pending == nil {
		s.pending = corkBuffers.Get().(*[]byte)
	}
	*s.pending = append(append(*s.pending, h...), p...)
	if !s.corked || len(*s.pending) >= corkFlush {
		return s.flushLocked()
	}
	return nil
}

// textHeader appends the header of a final, unmasked text frame of n
// payload bytes to dst.
func textHeader(dst []byte, n int) []byte {
	const finText = 0x81
	switch {
	case n < 126:
		return append(dst, finText, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, finText, 127), uint64(n))
	}
}

// stop fails every later write with net.ErrClosed. The reader calls it
// once its reads have ended: coder/websocket may have sent a close frame
// then (a frame over the read limit, a protocol error), and no frame of
// the writer's may follow it, which writeText, past coder/websocket's own
// check, would otherwise allow.
func (s *sock) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = net.ErrClosed
	}
}

// cork makes writes wait in a buffer until uncork.
func (s *sock) cork() {
	s.mu.Lock()
	s.corked = true
	s.mu.Unlock()
}

// uncork writes what waits, in one system call, and lets writes through
// again. It returns the error of any write since the cork, buffered or not.
func (s *sock) uncork() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corked = false
	if s.pending != nil {
		return s.flushLocked()
	}
	return s.err
}

// flushLocked writes the buffer and gives it back, whatever the outcome.
func (s *sock) flushLocked() error {
	b := s.pending
	s.pending = nil
	_, err := s.writeLocked(*b)
	if cap(*b) <= 2*corkFlush {
		*b = (*b)[:0]
		corkBuffers.Put(b)
	}
	return err
}

// writeLocked writes p to the socket within the write timeout.
//
// Close is not under mu, so Abort (CloseNow) ends a write blocked here at
// once rather than after the timeout.
func (s *sock) writeLocked(p []byte) (int, error) {
	if err := s.deadlineLocked(); err != nil {
		return 0, err
	}
	n, err := s.Conn.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// deadlineLocked bounds the next write by the write timeout.
func (s *sock) deadlineLocked() error {
	if err := s.Conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		s.err = err
		return err
	}
	return nil
}
