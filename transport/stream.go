package transport

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// StreamConfig configures a Sender or a Receiver. Zero values mean defaults.
// Sender and Receiver of one stream must agree on AckSubject; everything
// else is either one side's business or announced on the wire.
type StreamConfig struct {
	// Sender: compression of the chunks (none | zstd | s2). A chunk that
	// does not shrink is sent uncompressed.
	Codec Codec
	// Sender: max uncompressed bytes per chunk; default 1 MiB. Rounded down
	// to a multiple of 8 and clamped so a chunk plus its header fits the
	// server's max payload.
	ChunkSize int
	// Receiver: frames the receiver may hold beyond the last one Recv
	// returned (the credit window W); default 4. Receiver memory is bounded
	// by Window × MaxFrameBytes.
	Window int
	// Receiver: largest frame body accepted; default 1 GiB.
	MaxFrameBytes int64
	// Sender: an unacknowledged frame is retransmitted after this long,
	// doubling per retry up to 8x; default 1 s.
	RetransmitTimeout time.Duration
	// Sender: retransmissions of one frame before the Sender fails; default
	// 8. Only attempts made while connected count, so a reconnecting
	// connection does not use them up.
	MaxRetries int
	// Acks and credits subject; default DefaultAckSubject(subject).
	AckSubject string
	// Logger; default the connection's logger.
	Logger *slog.Logger
}

const (
	defaultChunkSize     = 1 << 20
	defaultWindow        = 4
	defaultMaxFrameBytes = 1 << 30
	defaultRTO           = time.Second
	defaultMaxRetries    = 8
	maxRTOBackoffShift   = 3 // RTO grows to at most 8x
)

// ErrClosed is returned by operations on a closed Sender or Receiver.
var ErrClosed = errors.New("transport: stream closed")

func (cfg StreamConfig) withDefaults(c *Conn, subject string) StreamConfig {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = defaultChunkSize
	}
	if cfg.Window <= 0 {
		cfg.Window = defaultWindow
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = defaultMaxFrameBytes
	}
	if cfg.RetransmitTimeout <= 0 {
		cfg.RetransmitTimeout = defaultRTO
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = defaultMaxRetries
	}
	if cfg.AckSubject == "" {
		cfg.AckSubject = DefaultAckSubject(subject)
	}
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	cfg.Logger = cfg.Logger.With("stream", subject)
	return cfg
}

// StreamStats is a snapshot of a stream end's counters, for metrics.
type StreamStats struct {
	Frames       uint64 // frames sent (Sender) or returned by Recv (Receiver)
	PayloadBytes uint64 // uncompressed frame body bytes of Frames
	Chunks       uint64 // chunk messages published, or accepted after checks
	WireBytes    uint64 // bytes of chunk messages published / received, retransmits included
	Retransmits  uint64 // Sender: frames sent again after a timeout
	Acks         uint64 // acks received (Sender) or sent (Receiver)
	CRCFailures  uint64 // Receiver: chunks dropped for a bad header or chunk crc32c
	Rejected     uint64 // Receiver: frames refused (stale epoch, foreign session, malformed, discarded)
	Duplicates   uint64 // Receiver: chunks of frames already received (retransmits, replays)
	OutOfWindow  uint64 // Receiver: chunks beyond the granted credit, dropped
}

type streamCounters struct {
	frames, payloadBytes, chunks, wireBytes, retransmits, acks atomic.Uint64
	crcFailures, rejected, duplicates, outOfWindow             atomic.Uint64
}

func (c *streamCounters) snapshot() StreamStats {
	return StreamStats{
		Frames: c.frames.Load(), PayloadBytes: c.payloadBytes.Load(),
		Chunks: c.chunks.Load(), WireBytes: c.wireBytes.Load(),
		Retransmits: c.retransmits.Load(), Acks: c.acks.Load(),
		CRCFailures: c.crcFailures.Load(), Rejected: c.rejected.Load(),
		Duplicates: c.duplicates.Load(), OutOfWindow: c.outOfWindow.Load(),
	}
}

// notifier is a broadcast "something changed" signal usable in select.
type notifier struct{ ch chan struct{} }

func newNotifier() notifier { return notifier{ch: make(chan struct{})} }

// wait returns a channel closed at the next broadcast; call with the state
// lock held, then release it and select on the channel.
func (n *notifier) wait() <-chan struct{} { return n.ch }

// broadcast wakes all waiters; call with the state lock held.
func (n *notifier) broadcast() {
	close(n.ch)
	n.ch = make(chan struct{})
}
