package shardrpc

import (
	"context"
	"fmt"
)

// Pipe carries activations forward to the next shard and gradients back to
// the previous one. Messages are tagged with the step so a stale one is
// never mistaken for the current.
type Pipe interface {
	SendForward(ctx context.Context, step int, h []float32) error
	RecvForward(ctx context.Context, step int) ([]float32, error)
	SendBackward(ctx context.Context, step int, d []float32) error
	RecvBackward(ctx context.Context, step int) ([]float32, error)
}

type tagged struct {
	step int
	data []float32
}

// localPipe connects in-process shards with channels.
type localPipe struct {
	fwdIn, bwdIn   chan tagged // what this shard receives
	fwdOut, bwdOut chan tagged // what it sends (the neighbours' inputs)
}

// LocalPipes returns the pipes of n in-process shards in a chain.
func LocalPipes(n int) []Pipe {
	fwd := make([]chan tagged, n+1) // fwd[i] feeds shard i
	bwd := make([]chan tagged, n+1) // bwd[i] feeds shard i
	for i := range fwd {
		fwd[i], bwd[i] = make(chan tagged, 1), make(chan tagged, 1)
	}
	ps := make([]Pipe, n)
	for i := 0; i < n; i++ {
		p := &localPipe{fwdIn: fwd[i], bwdIn: bwd[i], fwdOut: fwd[i+1]}
		if i > 0 {
			p.bwdOut = bwd[i-1]
		}
		ps[i] = p
	}
	return ps
}

func send(ctx context.Context, c chan tagged, step int, v []float32) error {
	if c == nil {
		return fmt.Errorf("no neighbour to send to")
	}
	select {
	case c <- tagged{step, append([]float32(nil), v...)}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func recv(ctx context.Context, c chan tagged, step int) ([]float32, error) {
	for {
		select {
		case m := <-c:
			if m.step == step {
				return m.data, nil
			}
			if m.step > step {
				return nil, fmt.Errorf("received data of step %d while waiting for step %d", m.step, step)
			}
			// An older step's message (from an aborted attempt): drop it.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *localPipe) SendForward(ctx context.Context, k int, h []float32) error {
	return send(ctx, p.fwdOut, k, h)
}
func (p *localPipe) RecvForward(ctx context.Context, k int) ([]float32, error) {
	return recv(ctx, p.fwdIn, k)
}
func (p *localPipe) SendBackward(ctx context.Context, k int, d []float32) error {
	return send(ctx, p.bwdOut, k, d)
}
func (p *localPipe) RecvBackward(ctx context.Context, k int) ([]float32, error) {
	return recv(ctx, p.bwdIn, k)
}
