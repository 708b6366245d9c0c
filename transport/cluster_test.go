package transport

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerCluster: two servers joined by a route carry a request from a
// client of one to a handler on the other.
func TestServerCluster(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	a, err := StartServer(ServerConfig{Port: -1, Name: "a", ClusterName: "c", ClusterPort: p1,
		Routes: []string{fmt.Sprintf("nats-route://127.0.0.1:%d", p2)}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := StartServer(ServerConfig{Port: -1, Name: "b", ClusterName: "c", ClusterPort: p2,
		Routes: []string{fmt.Sprintf("nats-route://127.0.0.1:%d", p1)}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	ca, err := Connect(Options{URL: a.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := Connect(Options{URL: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	stop, err := cb.Handle("x.echo", "", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Routes take a moment to form and propagate the subscription.
	for {
		out, err := ca.Call(ctx, "x.echo", []byte("hi"), CallOptions{Timeout: 200 * time.Millisecond})
		if err == nil && string(out) == "hi" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no reply across the route: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServerClusterConfigErrors(t *testing.T) {
	if _, err := StartServer(ServerConfig{Port: -1, ClusterPort: freePort(t)}); err == nil {
		t.Fatal("a cluster without a name was accepted")
	}
	if _, err := StartServer(ServerConfig{Port: -1, ClusterName: "c", Routes: []string{"::bad"}}); err == nil {
		t.Fatal("a malformed route was accepted")
	}
}
