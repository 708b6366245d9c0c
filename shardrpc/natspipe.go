package shardrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/unipruning/unipruning/transport"
)

// Frame kinds of the pipeline streams.
const (
	kindAct  = "act"  // activations, stage i → i+1
	kindGrad = "grad" // activation gradients, stage i+1 → i
)

// NATSPipe is the Pipe of one pipeline stage in a cluster: activations go
// to stage+1 and gradients to stage−1 over transport streams (reliable,
// ordered, flow-controlled), one Sender and one Receiver per direction and
// neighbour. The first stage has no activation input or gradient output,
// the last no activation output or gradient input.
//
// Subjects are a function of (epoch, stage index) only, never of shard
// IDs: stream.act.e<E>-s<i>.e<E>-s<i+1> and stream.grad.e<E>-s<i+1>.e<E>-s<i>.
// A replacement for stage i under epoch E therefore finds its neighbours
// without knowing who they are, and nothing of an older epoch can reach a
// newer pipe (different subjects, and the receivers fence epoch E anyway).
//
// SendX may be called concurrently with RecvY; two concurrent calls of the
// same RecvX are not supported (the worker never does that).
type NATSPipe struct {
	job           string
	epoch         uint64
	stage, stages int
	cols          int // values per row in frame headers (the model width), 0: one row
	log           *slog.Logger

	actOut, gradOut *transport.Sender
	actIn, gradIn   *inbox
}

// inbox is one receiving stream plus a frame held back for a later step.
type inbox struct {
	rx   *transport.Receiver
	kind string
	held *frame
}

type frame struct {
	hdr  transport.FrameHeader
	data []float32
}

// NewNATSPipe opens the streams of stage (0-based) among stages under epoch.
func NewNATSPipe(conn *transport.Conn, subj transport.Subjects, epoch uint64, stage, stages int, cfg transport.StreamConfig) (*NATSPipe, error) {
	if stages < 1 || stage < 0 || stage >= stages {
		return nil, fmt.Errorf("shard: pipe stage %d of %d", stage, stages)
	}
	log := cfg.Logger
	if log == nil {
		log = conn.Logger()
	}
	p := &NATSPipe{job: subj.Job, epoch: epoch, stage: stage, stages: stages,
		log: log.With("stage", stage, "epoch", epoch)}
	if err := p.open(conn, subj, cfg); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *NATSPipe) open(conn *transport.Conn, subj transport.Subjects, cfg transport.StreamConfig) error {
	var err error
	if p.stage > 0 {
		if p.actIn, err = p.openInbox(conn, subj, cfg, kindAct, p.stage-1, p.stage); err != nil {
			return err
		}
		if p.gradOut, err = p.openSender(conn, subj, cfg, kindGrad, p.stage, p.stage-1); err != nil {
			return err
		}
	}
	if p.stage < p.stages-1 {
		if p.gradIn, err = p.openInbox(conn, subj, cfg, kindGrad, p.stage+1, p.stage); err != nil {
			return err
		}
		if p.actOut, err = p.openSender(conn, subj, cfg, kindAct, p.stage, p.stage+1); err != nil {
			return err
		}
	}
	return nil
}

func (p *NATSPipe) subject(subj transport.Subjects, kind string, from, to int) (string, error) {
	tok := func(i int) string { return fmt.Sprintf("e%d-s%d", p.epoch, i) }
	return subj.Stream(kind, tok(from), tok(to))
}

func (p *NATSPipe) openInbox(conn *transport.Conn, subj transport.Subjects, cfg transport.StreamConfig, kind string, from, to int) (*inbox, error) {
	s, err := p.subject(subj, kind, from, to)
	if err != nil {
		return nil, err
	}
	rx, err := conn.NewReceiver(s, cfg)
	if err != nil {
		return nil, err
	}
	rx.SetMinEpoch(p.epoch)
	return &inbox{rx: rx, kind: kind}, nil
}

func (p *NATSPipe) openSender(conn *transport.Conn, subj transport.Subjects, cfg transport.StreamConfig, kind string, from, to int) (*transport.Sender, error) {
	s, err := p.subject(subj, kind, from, to)
	if err != nil {
		return nil, err
	}
	return conn.NewSender(s, cfg)
}

// SetWidth sets the row width announced in frame headers (the model's
// hidden size), so a frame reads as seqlen×dim in logs and tools. It does
// not change what is sent.
func (p *NATSPipe) SetWidth(cols int) { p.cols = cols }

// Epoch is the epoch the pipe's streams belong to.
func (p *NATSPipe) Epoch() uint64 { return p.epoch }

// SendForward sends step k's activations to the next stage.
func (p *NATSPipe) SendForward(ctx context.Context, k int, h []float32) error {
	if p.actOut == nil {
		return fmt.Errorf("shard: stage %d of %d is the last: no next stage to send activations to", p.stage, p.stages)
	}
	return p.send(ctx, p.actOut, kindAct, k, h)
}

// SendBackward sends step k's activation gradients to the previous stage.
func (p *NATSPipe) SendBackward(ctx context.Context, k int, d []float32) error {
	if p.gradOut == nil {
		return fmt.Errorf("shard: stage %d of %d is the first: no previous stage to send gradients to", p.stage, p.stages)
	}
	return p.send(ctx, p.gradOut, kindGrad, k, d)
}

// RecvForward returns step k's activations from the previous stage.
func (p *NATSPipe) RecvForward(ctx context.Context, k int) ([]float32, error) {
	if p.actIn == nil {
		return nil, fmt.Errorf("shard: stage %d of %d is the first: it receives no activations", p.stage, p.stages)
	}
	return p.recv(ctx, p.actIn, k)
}

// RecvBackward returns step k's gradients from the next stage.
func (p *NATSPipe) RecvBackward(ctx context.Context, k int) ([]float32, error) {
	if p.gradIn == nil {
		return nil, fmt.Errorf("shard: stage %d of %d is the last: it receives no gradients", p.stage, p.stages)
	}
	return p.recv(ctx, p.gradIn, k)
}

func (p *NATSPipe) send(ctx context.Context, s *transport.Sender, kind string, k int, v []float32) error {
	rows, cols := 1, len(v)
	if p.cols > 0 && len(v)%p.cols == 0 {
		rows, cols = len(v)/p.cols, p.cols
	}
	hdr := transport.FrameHeader{Job: p.job, Epoch: p.epoch, Step: int64(k), Kind: kind, Rows: rows, Cols: cols}
	if err := s.Send(ctx, hdr, v); err != nil {
		return fmt.Errorf("shard: send %s of step %d: %w", kind, k, err)
	}
	return nil
}

// recv returns the frame of step k. Frames of older steps (left over by an
// aborted attempt of a step) are dropped. A frame of a newer step means the
// neighbour is ahead of us: it is an error, but the frame is kept for the
// call that asks for its step, so a caller that catches up loses nothing.
func (p *NATSPipe) recv(ctx context.Context, in *inbox, k int) ([]float32, error) {
	for {
		f := in.held
		in.held = nil
		if f == nil {
			hdr, data, err := in.rx.Recv(ctx)
			if err != nil {
				return nil, fmt.Errorf("shard: receive %s of step %d: %w", in.kind, k, err)
			}
			f = &frame{hdr, data}
		}
		switch step := int(f.hdr.Step); {
		case f.hdr.Kind != in.kind || f.hdr.Job != p.job:
			return nil, fmt.Errorf("shard: %s stream delivered a %q frame of job %q (want job %q)", in.kind, f.hdr.Kind, f.hdr.Job, p.job)
		case step < k:
			p.log.Debug("dropping frame of an older step", "kind", in.kind, "frame_step", step, "want", k)
		case step > k:
			in.held = f
			return nil, fmt.Errorf("shard: received %s of step %d while waiting for step %d", in.kind, step, k)
		default:
			return f.data, nil
		}
	}
}

// Close stops all streams. Frames not yet acknowledged are abandoned; a
// blocked Send or Recv returns an error.
func (p *NATSPipe) Close() error {
	var errs []error
	for _, s := range []*transport.Sender{p.actOut, p.gradOut} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	for _, in := range []*inbox{p.actIn, p.gradIn} {
		if in != nil {
			errs = append(errs, in.rx.Close())
		}
	}
	return errors.Join(errs...)
}

// PipeStats are a pipe's traffic counters, summed over its streams.
type PipeStats struct {
	FramesSent, FramesReceived uint64
	// Wire bytes of chunk messages (headers and retransmissions included).
	BytesSent, BytesReceived uint64
	Retransmits              uint64
}

// Stats returns the pipe's counters.
func (p *NATSPipe) Stats() PipeStats {
	var st PipeStats
	for _, s := range []*transport.Sender{p.actOut, p.gradOut} {
		if s != nil {
			x := s.Stats()
			st.FramesSent += x.Frames
			st.BytesSent += x.WireBytes
			st.Retransmits += x.Retransmits
		}
	}
	for _, in := range []*inbox{p.actIn, p.gradIn} {
		if in != nil {
			x := in.rx.Stats()
			st.FramesReceived += x.Frames
			st.BytesReceived += x.WireBytes
		}
	}
	return st
}
