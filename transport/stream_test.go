package transport

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type streamEnv struct {
	srv    *Server
	sc, rc *Conn // sender's and receiver's connections (two "shards")
	subj   string
}

var subjCounter atomic.Int64

func newStreamEnv(t *testing.T) *streamEnv {
	s := startServer(t, ServerConfig{})
	return &streamEnv{
		srv:  s,
		sc:   connect(t, s.ClientURL(), Options{Name: "stage0"}),
		rc:   connect(t, s.ClientURL(), Options{Name: "stage1"}),
		subj: fmt.Sprintf("unipruning.test.stream.act.s0.s%d", subjCounter.Add(1)),
	}
}

func (e *streamEnv) pair(t *testing.T, scfg, rcfg StreamConfig) (*Sender, *Receiver) {
	t.Helper()
	r, err := e.rc.NewReceiver(e.subj, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	s, err := e.sc.NewSender(e.subj, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, r
}

// activations returns n float32 values like a layer's activations:
// Gaussian, with a fraction of exact zeros and a few special values.
func activations(seed uint64, n int, zeroFrac float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 99))
	v := make([]float32, n)
	for i := range v {
		if r.Float64() >= zeroFrac {
			v[i] = float32(r.NormFloat64())
		}
	}
	special := []float32{float32(math.NaN()), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), math.MaxFloat32}
	for i := 0; i < len(special) && i < n; i++ {
		v[(i*7919)%n] = special[i]
	}
	return v
}

func bitsEqual(a, b []float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("length %d != %d", len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Errorf("value %d: %08x != %08x", i, math.Float32bits(a[i]), math.Float32bits(b[i]))
		}
	}
	return nil
}

// seqData is the payload of frame number seq in the multi-frame tests.
func seqData(seq uint64, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(seq)*1000 + float32(i%997)
	}
	return v
}

// sendFrames sends frames 1..n of size floats each, then flushes.
func sendFrames(ctx context.Context, s *Sender, n, size int, sent *atomic.Int64) error {
	for i := 1; i <= n; i++ {
		hdr := FrameHeader{Job: "test", Step: int64(i), Kind: "act", Rows: 1, Cols: size}
		if err := s.Send(ctx, hdr, seqData(uint64(i), size)); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
		if sent != nil {
			sent.Add(1)
		}
	}
	return s.Flush(ctx)
}

// recvFrames checks that frames 1..n arrive exactly once, in order, intact.
func recvFrames(ctx context.Context, r *Receiver, n, size int, each func(i int)) error {
	for i := 1; i <= n; i++ {
		if each != nil {
			each(i)
		}
		hdr, data, err := r.Recv(ctx)
		if err != nil {
			return fmt.Errorf("recv %d: %w", i, err)
		}
		if hdr.Seq != uint64(i) || hdr.Step != int64(i) {
			return fmt.Errorf("frame %d arrived as seq %d step %d", i, hdr.Seq, hdr.Step)
		}
		if err := bitsEqual(data, seqData(uint64(i), size)); err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
	}
	return nil
}

func TestStreamCodecsAndSizes(t *testing.T) {
	e := newStreamEnv(t)
	sizes := []int{0, 1, (1 << 20) / 4, (5 << 20) / 4}
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecS2} {
		t.Run(codec.String(), func(t *testing.T) {
			e.subj = fmt.Sprintf("unipruning.test.stream.act.%s.s1", codec)
			s, r := e.pair(t, StreamConfig{Codec: codec}, StreamConfig{})
			ctx := testCtx(t, 20*time.Second)
			for i, n := range sizes {
				want := activations(uint64(i), n, 0.5)
				hdr := FrameHeader{Job: "job", Epoch: 2, Step: 7, Kind: "act", Rows: 1, Cols: n, Tag: "t"}
				if n == 0 {
					hdr.Rows, hdr.Cols = 0, 4096 // an empty tensor still has a shape
				}
				if err := s.Send(ctx, hdr, want); err != nil {
					t.Fatal(err)
				}
				got, data, err := r.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				hdr.Seq = uint64(i + 1)
				if got != hdr {
					t.Fatalf("header %+v, want %+v", got, hdr)
				}
				if err := bitsEqual(data, want); err != nil {
					t.Fatalf("%d floats: %v", n, err)
				}
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			ss, rs := s.Stats(), r.Stats()
			if rs.Frames != uint64(len(sizes)) || rs.PayloadBytes != ss.PayloadBytes || rs.CRCFailures != 0 {
				t.Fatalf("stats: sender %+v receiver %+v", ss, rs)
			}
			if codec != CodecNone && ss.WireBytes >= ss.PayloadBytes {
				t.Errorf("%v did not compress half-zero data: wire %d payload %d", codec, ss.WireBytes, ss.PayloadBytes)
			}
		})
	}
}

func TestStreamTinyChunks(t *testing.T) {
	// 8-byte chunks: the metadata spans many chunks and every float is its own.
	e := newStreamEnv(t)
	s, r := e.pair(t, StreamConfig{ChunkSize: 8, Codec: CodecS2}, StreamConfig{})
	ctx := testCtx(t, 10*time.Second)
	go func() { _ = sendFrames(ctx, s, 3, 33, nil) }()
	if err := recvFrames(ctx, r, 3, 33, nil); err != nil {
		t.Fatal(err)
	}
}

func TestStreamSlowReceiverBlocksSender(t *testing.T) {
	e := newStreamEnv(t)
	const window, frames, size = 2, 12, 1000
	s, r := e.pair(t, StreamConfig{}, StreamConfig{Window: window})
	ctx := testCtx(t, 20*time.Second)
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- sendFrames(ctx, s, frames, size, &sent) }()
	err := recvFrames(ctx, r, frames, size, func(i int) {
		time.Sleep(15 * time.Millisecond) // a slow consumer
		if n := sent.Load(); n > int64(i-1+window) {
			t.Errorf("sender ran ahead: %d frames sent while the receiver has consumed %d (window %d)", n, i-1, window)
		}
		r.mu.Lock()
		if n := len(r.cur.frames); n > window {
			t.Errorf("receiver buffers %d frames, window is %d", n, window)
		}
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Frames != frames || st.Rejected != 0 || st.OutOfWindow != 0 {
		t.Fatalf("receiver stats %+v", st)
	}
}

// lossy drops a pseudo-random fraction of the messages on the data subject
// (seeded, so runs are repeatable) and the first few acks.
func lossy(subj string, dataLoss float64, acks int) publishHook {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 7))
	a := 0
	return func(s string, d []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if s == subj {
			if rng.Float64() < dataLoss {
				return nil
			}
		} else if a < acks {
			a++
			return nil
		}
		return d
	}
}

func TestStreamSurvivesLostChunksAndAcks(t *testing.T) {
	e := newStreamEnv(t)
	const frames, size = 12, 50000 // 200 KB frames in 64 KiB chunks
	setHook(t, e.sc, lossy(e.subj, 0.15, 0))
	setHook(t, e.rc, lossy(e.subj, 0, 5))
	s, r := e.pair(t, StreamConfig{ChunkSize: 64 << 10, RetransmitTimeout: 40 * time.Millisecond, MaxRetries: 20},
		StreamConfig{Window: 3})
	ctx := testCtx(t, 30*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- sendFrames(ctx, s, frames, size, nil) }()
	if err := recvFrames(ctx, r, frames, size, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if s.Stats().Retransmits == 0 {
		t.Fatal("expected retransmissions")
	}
	assertNoMore(t, r)
}

// assertNoMore checks that nothing else is delivered.
func assertNoMore(t *testing.T, r *Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if hdr, _, err := r.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unexpected extra frame %+v (%v)", hdr, err)
	}
}

func TestStreamSurvivesServerRestart(t *testing.T) {
	e := newStreamEnv(t)
	const frames, size = 40, 20000
	s, r := e.pair(t, StreamConfig{RetransmitTimeout: 100 * time.Millisecond, Codec: CodecZstd},
		StreamConfig{Window: 4})
	ctx := testCtx(t, 30*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- sendFrames(ctx, s, frames, size, nil) }()
	port := e.srv.Port()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(50 * time.Millisecond)
		e.srv.Shutdown() // cut both connections mid-stream
		time.Sleep(100 * time.Millisecond)
		s2, err := StartServer(ServerConfig{Port: port})
		if err != nil {
			t.Errorf("restart on port %d: %v", port, err)
			return
		}
		t.Cleanup(s2.Shutdown)
	}()
	err := recvFrames(ctx, r, frames, size, func(i int) {
		if i == 10 {
			time.Sleep(100 * time.Millisecond) // keep the stream busy across the outage
		}
	})
	<-restarted
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if e.sc.Stats().Reconnects == 0 {
		t.Fatal("connection was never cut")
	}
	assertNoMore(t, r)
}

// corruptOnce flips one payload byte of the given chunk the first time it is sent.
func corruptOnce(subj string, seq uint64, index uint32) publishHook {
	var done atomic.Bool
	return func(s string, d []byte) []byte {
		if s != subj || done.Load() {
			return d
		}
		h, err := parseChunkHeader(d)
		if err != nil || h.typ != msgData || h.seq != seq || h.index != index {
			return d
		}
		done.Store(true)
		c := append([]byte(nil), d...)
		c[len(c)-1] ^= 0x40
		return c
	}
}

func TestStreamCorruptChunkRetransmitted(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecS2} {
		t.Run(codec.String(), func(t *testing.T) {
			e := newStreamEnv(t)
			log, buf := captureLogger()
			setHook(t, e.sc, corruptOnce(e.subj, 2, 1))
			s, r := e.pair(t, StreamConfig{Codec: codec, ChunkSize: 4096, RetransmitTimeout: 50 * time.Millisecond},
				StreamConfig{Logger: log})
			ctx := testCtx(t, 10*time.Second)
			go func() { _ = sendFrames(ctx, s, 3, 5000, nil) }()
			if err := recvFrames(ctx, r, 3, 5000, nil); err != nil {
				t.Fatal(err)
			}
			if r.Stats().CRCFailures != 1 || s.Stats().Retransmits == 0 {
				t.Fatalf("stats: receiver %+v sender %+v", r.Stats(), s.Stats())
			}
			if !buf.Contains("dropping corrupt stream chunk") || !buf.Contains("seq=2 chunk=1") {
				t.Fatalf("no clear log line:\n%s", buf.String())
			}
		})
	}
}

func TestStreamCorruptHeaderDropped(t *testing.T) {
	e := newStreamEnv(t)
	log, buf := captureLogger()
	var done atomic.Bool
	setHook(t, e.sc, func(s string, d []byte) []byte {
		if s == e.subj && len(d) > chunkHeaderSize && done.CompareAndSwap(false, true) {
			c := append([]byte(nil), d...)
			c[20] ^= 1 // inside the seq field
			return c
		}
		return d
	})
	s, r := e.pair(t, StreamConfig{RetransmitTimeout: 50 * time.Millisecond}, StreamConfig{Logger: log})
	ctx := testCtx(t, 10*time.Second)
	go func() { _ = sendFrames(ctx, s, 2, 100, nil) }()
	if err := recvFrames(ctx, r, 2, 100, nil); err != nil {
		t.Fatal(err)
	}
	if r.Stats().CRCFailures != 1 || !buf.Contains("chunk header crc32c mismatch") {
		t.Fatalf("stats %+v log:\n%s", r.Stats(), buf.String())
	}
}

func TestStreamStaleEpochRejected(t *testing.T) {
	e := newStreamEnv(t)
	log, buf := captureLogger()
	s, r := e.pair(t, StreamConfig{}, StreamConfig{Logger: log})
	ctx := testCtx(t, 10*time.Second)
	// A frame from the old epoch is delivered before the fence...
	if err := s.Send(ctx, FrameHeader{Epoch: 4, Rows: 1, Cols: 1}, []float32{1}); err != nil {
		t.Fatal(err)
	}
	if hdr, _, err := r.Recv(ctx); err != nil || hdr.Epoch != 4 {
		t.Fatalf("%+v %v", hdr, err)
	}
	r.SetMinEpoch(5)
	// ...and rejected after it; the stream carries on with the new epoch.
	for _, ep := range []uint64{4, 5} {
		if err := s.Send(ctx, FrameHeader{Epoch: ep, Rows: 1, Cols: 1}, []float32{float32(ep)}); err != nil {
			t.Fatal(err)
		}
	}
	hdr, data, err := r.Recv(ctx)
	if err != nil || hdr.Epoch != 5 || hdr.Seq != 3 || data[0] != 5 {
		t.Fatalf("got %+v %v %v", hdr, data, err)
	}
	if err := s.Flush(ctx); err != nil { // the stale frame was acknowledged, not left dangling
		t.Fatal(err)
	}
	if r.Stats().Rejected != 1 || !buf.Contains("below the epoch fence") {
		t.Fatalf("stats %+v log:\n%s", r.Stats(), buf.String())
	}
	// A fenced sender that starts over is refused outright.
	old, err := e.sc.NewSender(e.subj, StreamConfig{RetransmitTimeout: 20 * time.Millisecond, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Send(ctx, FrameHeader{Epoch: 3, Rows: 1, Cols: 1}, []float32{3}); err != nil {
		t.Fatal(err)
	}
	if err := old.Flush(ctx); err == nil || !errors.Is(old.Err(), err) {
		t.Fatalf("fenced sender: want a retry error, got %v", err)
	}
	assertNoMore(t, r)
}

func TestStreamReplayIgnored(t *testing.T) {
	e := newStreamEnv(t)
	var mu sync.Mutex
	var captured [][]byte
	setHook(t, e.sc, func(s string, d []byte) []byte {
		if s == e.subj {
			mu.Lock()
			captured = append(captured, d)
			mu.Unlock()
		}
		return d
	})
	s, r := e.pair(t, StreamConfig{}, StreamConfig{})
	ctx := testCtx(t, 10*time.Second)
	if err := sendFrames(ctx, s, 3, 10, nil); err != nil {
		t.Fatal(err)
	}
	if err := recvFrames(ctx, r, 3, 10, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	old := captured
	mu.Unlock()
	for _, d := range old { // replay everything, bypassing the hook
		if err := e.sc.nc.Publish(e.subj, d); err != nil {
			t.Fatal(err)
		}
	}
	_ = e.sc.Flush(ctx)
	assertNoMore(t, r)
	if r.Stats().Duplicates == 0 {
		t.Fatal("replayed chunks not counted as duplicates")
	}
	// The live stream continues after the replay.
	if err := s.Send(ctx, FrameHeader{Step: 4, Rows: 1, Cols: 10}, seqData(4, 10)); err != nil {
		t.Fatal(err)
	}
	if hdr, _, err := r.Recv(ctx); err != nil || hdr.Seq != 4 {
		t.Fatalf("%+v %v", hdr, err)
	}
}

func TestStreamNewSenderTakesOver(t *testing.T) {
	e := newStreamEnv(t)
	a, r := e.pair(t, StreamConfig{}, StreamConfig{})
	ctx := testCtx(t, 10*time.Second)
	if err := sendFrames(ctx, a, 2, 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := recvFrames(ctx, r, 2, 5, nil); err != nil {
		t.Fatal(err)
	}
	// A replacement sender (e.g. a restarted stage) starts at seq 1 again.
	b, err := e.sc.NewSender(e.subj, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := sendFrames(ctx, b, 3, 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := recvFrames(ctx, r, 3, 5, nil); err != nil {
		t.Fatal(err)
	}
	// The old sender is retired: its new frames are refused.
	if err := a.Send(ctx, FrameHeader{Rows: 1, Cols: 1}, []float32{9}); err != nil {
		t.Fatal(err)
	}
	assertNoMore(t, r)
}

func TestStreamSenderFailsWithoutReceiver(t *testing.T) {
	e := newStreamEnv(t)
	s, r := e.pair(t, StreamConfig{RetransmitTimeout: 20 * time.Millisecond, MaxRetries: 2}, StreamConfig{})
	ctx := testCtx(t, 10*time.Second)
	waitFor(t, 5*time.Second, "credit", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.credit > 0 })
	_ = r.Close() // the receiving stage dies after granting credit
	if err := s.Send(ctx, FrameHeader{Rows: 1, Cols: 1}, []float32{1}); err != nil {
		t.Fatal(err)
	}
	err := s.Flush(ctx)
	if err == nil || !errors.Is(s.Err(), err) || !containsAll(err.Error(), "frame 1", "not acknowledged", "2 retransmissions") {
		t.Fatalf("want a clear retry error, got %v", err)
	}
	if err := s.Send(ctx, FrameHeader{}, nil); err == nil {
		t.Fatal("a failed sender accepted a frame")
	}
}

func TestStreamCloseUnblocks(t *testing.T) {
	e := newStreamEnv(t)
	s, r := e.pair(t, StreamConfig{}, StreamConfig{Window: 1})
	ctx := testCtx(t, 10*time.Second)
	waitFor(t, 5*time.Second, "credit", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.credit > 0 })
	recvErr := make(chan error, 1)
	go func() { _, _, err := r.Recv(ctx); recvErr <- err }()
	time.Sleep(20 * time.Millisecond)
	_ = r.Close()
	if err := <-recvErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	// Sender blocked on credit (window 1, nothing consumed) is released by Close.
	_ = s.Send(ctx, FrameHeader{}, nil)
	sendErr := make(chan error, 1)
	go func() { sendErr <- s.Send(ctx, FrameHeader{}, nil) }()
	time.Sleep(20 * time.Millisecond)
	_ = s.Close()
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
