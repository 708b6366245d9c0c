package transport

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Sender is the producing end of a tensor stream. It numbers frames, cuts
// them into checksummed chunks, waits for credit from the Receiver before
// sending, keeps every frame until the Receiver acknowledges it, and
// retransmits frames that were not acknowledged in time. The result is
// exactly-once, in-order delivery over at-most-once NATS, as long as both
// ends live. One Sender and one Receiver per subject.
//
// Each Sender has a random session ID. A Receiver follows one session at a
// time; a new Sender on the same subject (e.g. a restarted shard) is taken
// over when its frames carry a higher epoch than the current session's, or
// when the current session has nothing pending.
type Sender struct {
	c       *Conn
	subject string
	cfg     StreamConfig
	log     *slog.Logger
	session uint64
	stats   streamCounters

	sendMu  sync.Mutex // serialises Send so frames go out whole and in order
	scratch []byte     // chunk assembly buffer, guarded by sendMu

	mu        sync.Mutex
	nextSeq   uint64 // last assigned sequence number
	credit    uint64 // the receiver allows seq ≤ credit
	pending   map[uint64]*txFrame
	err       error // terminal failure
	closed    bool
	waiting   bool // a Send is blocked on credit
	lastProbe time.Time
	changed   notifier

	sub  *nats.Subscription
	done chan struct{}
	wg   sync.WaitGroup
}

type txFrame struct {
	seq      uint64
	msgs     [][]byte
	lastSent time.Time
	retries  int
}

// NewSender creates the sending end of the stream on subject.
func (c *Conn) NewSender(subject string, cfg StreamConfig) (*Sender, error) {
	if subject == "" {
		return nil, errors.New("transport: NewSender: empty subject")
	}
	cfg = cfg.withDefaults(c, subject)
	if cfg.Codec > CodecS2 {
		return nil, fmt.Errorf("transport: NewSender: unknown codec %v", cfg.Codec)
	}
	s := &Sender{
		c: c, subject: subject, cfg: cfg, log: cfg.Logger,
		session: randomSession(), pending: map[uint64]*txFrame{},
		changed: newNotifier(), done: make(chan struct{}),
	}
	sub, err := c.nc.Subscribe(cfg.AckSubject, s.onAck)
	if err != nil {
		return nil, fmt.Errorf("transport: NewSender %s: subscribe to acks: %w", subject, err)
	}
	s.sub = sub
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn("flush after subscribe failed", "err", err)
	}
	s.sendProbe() // a live receiver answers with its window at once
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

func randomSession() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v // 0 means "no session" on the wire
		}
	}
}

// Send transmits one frame. It blocks while the receiver has granted no
// credit (a slow receiver slows the sender down; nothing is dropped) and
// returns once the frame is handed to the connection; use Flush to wait for
// acknowledgement. data may be reused after Send returns. hdr.Seq is ignored:
// frames are numbered 1, 2, 3... by the Sender.
func (s *Sender) Send(ctx context.Context, hdr FrameHeader, data []float32) error {
	meta, err := encodeMeta(hdr, len(data))
	if err != nil {
		return err
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	seq, err := s.waitCredit(ctx)
	if err != nil {
		return err
	}
	payload := float32Bytes(data)
	f := &txFrame{seq: seq, msgs: s.encodeChunks(seq, hdr.Epoch, meta, payload)}
	s.mu.Lock()
	f.lastSent = time.Now()
	s.pending[seq] = f
	s.mu.Unlock()
	s.stats.frames.Add(1)
	s.stats.payloadBytes.Add(uint64(len(meta) + len(payload)))
	s.transmit(f)
	return nil
}

// waitCredit reserves the next sequence number once the receiver allows it.
func (s *Sender) waitCredit(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.err != nil {
			return 0, s.err
		}
		if s.closed {
			return 0, ErrClosed
		}
		if s.nextSeq < s.credit {
			s.nextSeq++
			s.waiting = false
			return s.nextSeq, nil
		}
		s.waiting = true
		ch := s.changed.wait()
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			s.waiting = false
			return 0, fmt.Errorf("transport: send on %s: waiting for receiver credit: %w", s.subject, ctx.Err())
		}
	}
}

// chunkSize is the configured chunk size clamped to what the server accepts.
func (s *Sender) chunkSize() int {
	cs := min(s.cfg.ChunkSize, s.c.MaxPayload()-chunkHeaderSize)
	return max(cs&^7, 8)
}

// encodeChunks builds the chunk messages of one frame. The body is the
// metadata followed by the payload; only a chunk that straddles both is
// copied into scratch before compression, every other one is read in place.
func (s *Sender) encodeChunks(seq, epoch uint64, meta, payload []byte) [][]byte {
	cs := s.chunkSize()
	total := len(meta) + len(payload)
	count := int(chunkCount(uint64(total), uint32(cs)))
	msgs := make([][]byte, count)
	for i := range count {
		off := i * cs
		n := min(cs, total-off)
		raw := s.bodyRange(meta, payload, off, n)
		h := chunkHeader{typ: msgData, codec: s.cfg.Codec, session: s.session, seq: seq, epoch: epoch,
			index: uint32(i), count: uint32(count), chunkSize: uint32(cs), rawLen: uint32(n),
			total: uint64(total), crc: crc32c(raw)}
		msg := make([]byte, chunkHeaderSize, chunkHeaderSize+n)
		if h.codec != CodecNone {
			msg = compressAppend(h.codec, msg, raw)
			if len(msg)-chunkHeaderSize >= n { // incompressible: send raw
				h.codec, msg = CodecNone, msg[:chunkHeaderSize]
			}
		}
		if h.codec == CodecNone {
			msg = append(msg, raw...)
		}
		h.put(msg)
		msgs[i] = msg
	}
	return msgs
}

func (s *Sender) bodyRange(meta, payload []byte, off, n int) []byte {
	if off >= len(meta) {
		return payload[off-len(meta) : off-len(meta)+n]
	}
	if off+n <= len(meta) {
		return meta[off : off+n]
	}
	s.scratch = append(s.scratch[:0], meta[off:]...)
	return append(s.scratch, payload[:n-(len(meta)-off)]...)
}

// transmit publishes all chunks of f. Publish errors other than a closed
// connection are left to the retransmission timer.
func (s *Sender) transmit(f *txFrame) {
	for _, m := range f.msgs {
		if err := s.c.publish(s.subject, m); err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) {
				s.fail(fmt.Errorf("transport: stream %s: connection closed", s.subject))
				return
			}
			s.log.Debug("publish failed; will retransmit", "seq", f.seq, "err", err)
			return
		}
		s.stats.chunks.Add(1)
		s.stats.wireBytes.Add(uint64(len(m)))
	}
}

func (s *Sender) sendProbe() {
	msg := make([]byte, chunkHeaderSize)
	h := chunkHeader{typ: msgProbe, session: s.session}
	h.put(msg)
	if err := s.c.publish(s.subject, msg); err != nil {
		s.log.Debug("probe failed", "err", err)
	}
}

func (s *Sender) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLocked(err)
}

func (s *Sender) failLocked(err error) {
	if s.err == nil {
		s.err = err
		s.log.Error("stream sender failed", "err", err)
		s.changed.broadcast()
	}
}

// onAck applies an ack: drop acknowledged frames and raise the credit. An
// ack for another session (or none) still tells a not-yet-adopted sender the
// receiver's window, which a new session starts with.
func (s *Sender) onAck(m *nats.Msg) {
	a, err := parseAck(m.Data)
	if err != nil {
		s.log.Warn("dropping bad ack", "err", err)
		return
	}
	s.stats.acks.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	credit := uint64(a.window)
	if a.session == s.session {
		for seq := range s.pending {
			if seq <= a.through || slices.Contains(a.sacks, seq) {
				delete(s.pending, seq)
			}
		}
		credit = a.credit
	}
	if credit > s.credit {
		s.credit = credit
	}
	s.changed.broadcast()
}

// loop drives retransmissions and credit probes.
func (s *Sender) loop() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.RetransmitTimeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.tick(now)
		}
	}
}

func (s *Sender) tick(now time.Time) {
	// While disconnected nothing can get through; do not burn retries.
	if !s.c.IsConnected() {
		return
	}
	s.mu.Lock()
	var due []*txFrame
	for _, f := range s.pending {
		rto := s.cfg.RetransmitTimeout << min(f.retries, maxRTOBackoffShift)
		if now.Sub(f.lastSent) < rto {
			continue
		}
		if f.retries >= s.cfg.MaxRetries {
			s.failLocked(fmt.Errorf("transport: stream %s: frame %d not acknowledged after %d retransmissions "+
				"(receiver gone, or it rejected this sender: see the receiver's log)", s.subject, f.seq, f.retries))
			s.mu.Unlock()
			return
		}
		f.retries++
		f.lastSent = now
		due = append(due, f)
	}
	// A blocked Send with nothing in flight gets no acks on its own; ask.
	probe := s.waiting && len(s.pending) == 0 && now.Sub(s.lastProbe) >= s.cfg.RetransmitTimeout
	if probe {
		s.lastProbe = now
	}
	s.mu.Unlock()
	slices.SortFunc(due, func(a, b *txFrame) int { return cmp.Compare(a.seq, b.seq) })
	for _, f := range due {
		s.stats.retransmits.Add(1)
		s.log.Debug("retransmitting frame", "seq", f.seq, "retry", f.retries)
		s.transmit(f)
	}
	if probe {
		s.sendProbe()
	}
}

// Flush waits until every frame sent so far has been acknowledged by the
// receiver (received and verified, not necessarily returned by Recv yet).
func (s *Sender) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) > 0 {
		if s.err != nil {
			return s.err
		}
		if s.closed {
			return ErrClosed
		}
		ch := s.changed.wait()
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("transport: flush %s: %d frame(s) unacknowledged: %w", s.subject, len(s.pending), ctx.Err())
		}
	}
	return s.err
}

// Close stops the Sender; unacknowledged frames are abandoned (call Flush
// first to avoid that). Blocked Send and Flush calls return ErrClosed.
func (s *Sender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.changed.broadcast()
	s.mu.Unlock()
	close(s.done)
	s.wg.Wait()
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("transport: close sender %s: %w", s.subject, err)
	}
	return nil
}

// Err returns the Sender's terminal error, if any.
func (s *Sender) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stats returns a snapshot of the Sender's counters.
func (s *Sender) Stats() StreamStats { return s.stats.snapshot() }
