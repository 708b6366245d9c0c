package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Receiver is the consuming end of a tensor stream. It verifies every chunk,
// reassembles frames, acknowledges each complete frame, drops duplicates and
// returns frames from Recv strictly in sequence order. It grants the Sender
// credit for Window frames beyond the last one Recv returned, so its memory
// is bounded by Window frames however slow the consumer is.
type Receiver struct {
	c       *Conn
	subject string
	cfg     StreamConfig
	log     *slog.Logger
	stats   streamCounters

	mu       sync.Mutex
	minEpoch uint64
	cur      *rxSession
	retired  []retiredSession // most recent last, bounded
	closed   bool
	changed  notifier

	sub *nats.Subscription
}

// rxSession is the state of the sender session the receiver follows.
type rxSession struct {
	id       uint64
	maxEpoch uint64
	consumed uint64 // last seq returned by Recv (or skipped as stale)
	through  uint64 // every seq ≤ through is complete
	frames   map[uint64]*rxFrame
}

type retiredSession struct{ id, through uint64 }

const maxRetiredSessions = 16

type rxFrame struct {
	epoch     uint64
	total     uint64
	count     uint32
	chunkSize uint32
	got       []bool
	nGot      uint32
	buf       frameBuf
	done      bool
	stale     bool // acknowledged but not delivered (fenced epoch, malformed)
	hdr       FrameHeader
	data      []float32
}

// NewReceiver creates the receiving end of the stream on subject and
// announces its window to a Sender that may already be waiting.
func (c *Conn) NewReceiver(subject string, cfg StreamConfig) (*Receiver, error) {
	if subject == "" {
		return nil, errors.New("transport: NewReceiver: empty subject")
	}
	cfg = cfg.withDefaults(c, subject)
	r := &Receiver{c: c, subject: subject, cfg: cfg, log: cfg.Logger, changed: newNotifier()}
	sub, err := c.nc.Subscribe(subject, r.onChunk)
	if err != nil {
		return nil, fmt.Errorf("transport: NewReceiver %s: %w", subject, err)
	}
	// Credits bound what is in flight; the client-side queue needs no cap of
	// its own beyond a generous safety net.
	_ = sub.SetPendingLimits(-1, 1<<30)
	r.sub = sub
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil {
		r.log.Warn("flush after subscribe failed", "err", err)
	}
	r.mu.Lock()
	r.sendAckLocked(ackMsg{window: uint32(cfg.Window)})
	r.mu.Unlock()
	return r, nil
}

// SetMinEpoch fences the stream: frames with a lower epoch are rejected
// (logged, acknowledged so a live sender moves on, never delivered),
// including ones already buffered. The fence only rises.
func (r *Receiver) SetMinEpoch(e uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e > r.minEpoch {
		r.minEpoch = e
		r.changed.broadcast()
	}
}

// MinEpoch returns the current fence.
func (r *Receiver) MinEpoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.minEpoch
}

// Recv returns the next frame in sequence order, waiting for it if needed.
// The returned slice belongs to the caller.
func (r *Receiver) Recv(ctx context.Context) (FrameHeader, []float32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.closed {
			return FrameHeader{}, nil, ErrClosed
		}
		if f := r.nextLocked(); f != nil {
			return f.hdr, f.data, nil
		}
		ch := r.changed.wait()
		r.mu.Unlock()
		select {
		case <-ch:
			r.mu.Lock()
		case <-ctx.Done():
			r.mu.Lock()
			return FrameHeader{}, nil, fmt.Errorf("transport: recv on %s: %w", r.subject, ctx.Err())
		}
	}
}

// nextLocked pops the next deliverable frame, skipping stale ones, and
// grants the credit that frees up.
func (r *Receiver) nextLocked() *rxFrame {
	s := r.cur
	if s == nil {
		return nil
	}
	for {
		f := s.frames[s.consumed+1]
		if f == nil || !f.done {
			return nil
		}
		delete(s.frames, s.consumed+1)
		s.consumed++
		r.ackLocked(s)
		if f.stale {
			continue
		}
		if f.epoch < r.minEpoch {
			r.rejectLocked(s.id, s.consumed, f.epoch, "buffered frame below the epoch fence")
			continue
		}
		r.stats.frames.Add(1)
		r.stats.payloadBytes.Add(f.total)
		return f
	}
}

// Close stops receiving. A blocked Recv returns ErrClosed.
func (r *Receiver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cur = nil
	r.changed.broadcast()
	r.mu.Unlock()
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("transport: close receiver %s: %w", r.subject, err)
	}
	return nil
}

// Stats returns a snapshot of the Receiver's counters.
func (r *Receiver) Stats() StreamStats { return r.stats.snapshot() }

func (r *Receiver) ackLocked(s *rxSession) {
	a := ackMsg{session: s.id, through: s.through, credit: s.consumed + uint64(r.cfg.Window),
		window: uint32(r.cfg.Window)}
	for seq, f := range s.frames {
		if seq > s.through && f.done {
			a.sacks = append(a.sacks, seq)
		}
	}
	sort.Slice(a.sacks, func(i, j int) bool { return a.sacks[i] < a.sacks[j] })
	r.sendAckLocked(a)
}

func (r *Receiver) sendAckLocked(a ackMsg) {
	if err := r.c.publish(r.cfg.AckSubject, a.marshal()); err != nil {
		r.log.Debug("sending ack failed; the sender will retransmit or probe", "err", err)
		return
	}
	r.stats.acks.Add(1)
}

func (r *Receiver) rejectLocked(session, seq, epoch uint64, why string) {
	r.stats.rejected.Add(1)
	r.log.Warn("rejecting stream frame", "reason", why, "session", fmt.Sprintf("%016x", session),
		"seq", seq, "epoch", epoch, "min_epoch", r.minEpoch)
}
