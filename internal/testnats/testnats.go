// Package testnats holds test helpers for code that talks over NATS: an
// embedded server, connections that close with the test, and loggers that
// stay quiet or record. Only tests import it.
package testnats

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unipruning/unipruning/transport"
)

// Start runs an embedded NATS server on a free port for the test.
func Start(t testing.TB) *transport.Server {
	t.Helper()
	ns, err := transport.StartServer(transport.ServerConfig{Port: -1})
	if err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// Dial connects to ns as name (log nil: quiet); the connection closes with
// the test.
func Dial(t testing.TB, ns *transport.Server, name string, log *slog.Logger) *transport.Conn {
	t.Helper()
	if log == nil {
		log = Quiet()
	}
	c, err := transport.Connect(transport.Options{URL: ns.ClientURL(), Name: name, Logger: log,
		ReconnectWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Quiet is a logger that drops everything.
func Quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
}

// LogBuffer collects log output for assertions.
type LogBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// Capture is a logger (level info) whose output the buffer records.
func Capture() (*slog.Logger, *LogBuffer) {
	b := &LogBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})), b
}

// Ctx is a context that ends after d or with the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
