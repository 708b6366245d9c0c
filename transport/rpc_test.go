package transport

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func rpcPair(t *testing.T) (srv, cli *Conn) {
	s := startServer(t, ServerConfig{})
	return connect(t, s.ClientURL(), Options{Name: "srv"}), connect(t, s.ClientURL(), Options{Name: "cli"})
}

func TestCallRoundTripAndJSON(t *testing.T) {
	srv, cli := rpcPair(t)
	rpcRoundTrip(t, cli)

	type req struct{ A, B int }
	type resp struct{ Sum int }
	stop, err := HandleJSON(srv, "rpc.add", "", func(_ context.Context, r req) (resp, error) {
		return resp{r.A + r.B}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var out resp
	if err := CallJSON(testCtx(t, 5*time.Second), cli, "rpc.add", req{2, 40}, &out, CallOptions{}); err != nil {
		t.Fatal(err)
	}
	if out.Sum != 42 {
		t.Fatalf("sum %d", out.Sum)
	}
	// Undecodable request: a typed remote error with CodeBadRequest.
	_, err = cli.Call(testCtx(t, 5*time.Second), "rpc.add", []byte("{not json"), CallOptions{})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeBadRequest {
		t.Fatalf("want RemoteError %s, got %v", CodeBadRequest, err)
	}
}

func TestCallRemoteError(t *testing.T) {
	srv, cli := rpcPair(t)
	var calls atomic.Int32
	stop, err := srv.Handle("rpc.fail", "", func(context.Context, []byte) ([]byte, error) {
		calls.Add(1)
		return nil, WithCode("stale_epoch", errors.New("epoch 3 < fence 4\nsecond line"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	start := time.Now()
	_, err = cli.Call(testCtx(t, 5*time.Second), "rpc.fail", nil, CallOptions{Timeout: 2 * time.Second, Retries: 3})
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("want *RemoteError, got %T %v", err, err)
	}
	if re.Code != "stale_epoch" || !strings.Contains(re.Message, "epoch 3 < fence 4 second line") || re.RequestID == "" {
		t.Fatalf("remote error %+v", re)
	}
	if errors.Is(err, ErrTimeout) || time.Since(start) > time.Second || calls.Load() != 1 {
		t.Fatalf("remote error must come back at once without retries (took %v, %d calls)", time.Since(start), calls.Load())
	}
	// A panicking handler is an error reply, not a dead process.
	stop2, _ := srv.Handle("rpc.panic", "", func(context.Context, []byte) ([]byte, error) { panic("boom") })
	defer stop2()
	_, err = cli.Call(testCtx(t, 5*time.Second), "rpc.panic", nil, CallOptions{})
	if !errors.As(err, &re) || !strings.Contains(re.Message, "panic: boom") {
		t.Fatalf("panic: %v", err)
	}
}

func TestCallTimeout(t *testing.T) {
	srv, cli := rpcPair(t)
	var ids sync.Map
	var calls atomic.Int32
	stop, err := srv.Handle("rpc.slow", "", func(ctx context.Context, _ []byte) ([]byte, error) {
		calls.Add(1)
		ids.Store(RequestID(ctx), true)
		<-ctx.Done() // the caller's deadline travels with the request
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	start := time.Now()
	_, err = cli.Call(testCtx(t, 5*time.Second), "rpc.slow", nil,
		CallOptions{Timeout: 60 * time.Millisecond, Retries: 1, Backoff: 10 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if !strings.Contains(err.Error(), "2 attempt") {
		t.Errorf("error does not say how many attempts: %v", err)
	}
	waitFor(t, 2*time.Second, "both attempts", func() bool { return calls.Load() == 2 })
	n := 0
	ids.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("retries must reuse the request id; saw %d ids", n)
	}
	// The parent context wins over retries.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = cli.Call(ctx, "rpc.slow", nil, CallOptions{Timeout: time.Second, Retries: 5})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context deadline, got %v", err)
	}
}

func TestCallRetriesUntilHandlerAppears(t *testing.T) {
	srv, cli := rpcPair(t)
	// Without retries: no responders, immediately.
	_, err := cli.Call(testCtx(t, 5*time.Second), "rpc.late", nil, CallOptions{Timeout: time.Second})
	if !errors.Is(err, ErrNoResponders) {
		t.Fatalf("want ErrNoResponders, got %v", err)
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		stop, err := srv.Handle("rpc.late", "workers", func(context.Context, []byte) ([]byte, error) {
			return []byte("here"), nil
		})
		if err == nil {
			t.Cleanup(stop)
		}
	}()
	got, err := cli.Call(testCtx(t, 10*time.Second), "rpc.late", nil,
		CallOptions{Timeout: time.Second, Retries: 50, Backoff: 20 * time.Millisecond})
	if err != nil || string(got) != "here" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestHandleStopCancelsAndWaits(t *testing.T) {
	srv, cli := rpcPair(t)
	started := make(chan struct{})
	var finished atomic.Bool
	stop, err := srv.Handle("rpc.block", "", func(ctx context.Context, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		finished.Store(true)
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = cli.Call(context.Background(), "rpc.block", nil, CallOptions{Timeout: 5 * time.Second}) }()
	<-started
	stop()
	if !finished.Load() {
		t.Fatal("stop returned while a handler was still running")
	}
	stop() // idempotent
}
