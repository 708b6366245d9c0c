package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// Short Raft timings for loopback tests. On a loaded two-core machine
// shorter ones make elections flap (the helpers retry, but waste time).
const (
	testHeartbeat = 300 * time.Millisecond
	testLease     = 150 * time.Millisecond
	testWait      = 10 * time.Second // upper bound for any single wait
)

// testLogger writes raft's warnings and errors to stderr (shown by go test
// only for failing packages or with -v), tagged with the node ID.
func testLogger(id string) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", id)
}

// freeAddr reserves a loopback port long enough to learn its number. The
// tiny window before the node binds it again is acceptable in tests, and
// needed: bootstrap peers and restarts need addresses known in advance.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testConfig(t *testing.T, id, addr string, tlsCfg *tls.Config) Config {
	return Config{
		NodeID:             id,
		BindAddr:           addr,
		DataDir:            t.TempDir(),
		TLS:                tlsCfg,
		HeartbeatTimeout:   testHeartbeat,
		ElectionTimeout:    testHeartbeat,
		LeaderLeaseTimeout: testLease,
		TrailingLogs:       8, // so a snapshot compacts the log and lagging peers need it
		Logger:             testLogger(id),
	}
}

func openNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

// checkGoroutines fails the test if goroutines started during it are still
// running after its cleanups (Shutdown of every node). Register it first so
// that it runs last.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or testWait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLeader waits until exactly one of nodes leads and all agree on it.
func waitLeader(t *testing.T, nodes ...*Node) *Node {
	t.Helper()
	var leader *Node
	eventually(t, "a leader all nodes agree on", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range nodes {
			if id, _ := n.Leader(); id != leader.ID() {
				return false
			}
		}
		return true
	})
	return leader
}

// onLeader runs op on the current leader, and again on the next one if
// leadership moves meanwhile: the test machine is shared, and under load an
// election can happen at any time. Commands keep their IDs across retries,
// which is the client behaviour the FSM's dedup window exists for.
func onLeader(t *testing.T, nodes []*Node, what string, op func(context.Context, *Node) error) *Node {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		leader := waitLeader(t, nodes...)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := op(ctx, leader)
		cancel()
		if err == nil {
			return leader
		}
		if !retryable(err) || time.Now().After(deadline) {
			t.Fatalf("%s on %s: %v", what, leader.ID(), err)
		}
		t.Logf("%s on %s: %v; retrying", what, leader.ID(), err)
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeadershipLost) || errors.Is(err, context.DeadlineExceeded)
}

func mustApply(t *testing.T, nodes []*Node, cmd Command) Result {
	t.Helper()
	var res Result
	onLeader(t, nodes, "apply "+cmd.Type, func(ctx context.Context, n *Node) (err error) {
		res, err = n.Apply(ctx, cmd)
		return err
	})
	return res
}

// waitConverged waits until every node holds the committed state.
func waitConverged(t *testing.T, nodes ...*Node) State {
	t.Helper()
	var want State
	onLeader(t, nodes, "barrier", func(ctx context.Context, n *Node) error {
		want = n.State()
		if err := n.Barrier(ctx); err != nil {
			return err
		}
		want = n.State()
		return nil
	})
	eventually(t, "replicas to converge", func() bool {
		for _, n := range nodes {
			if !reflect.DeepEqual(n.State(), want) {
				return false
			}
		}
		return true
	})
	return want
}

// seedJob submits a job, registers two shards and assigns them.
func seedJob(t *testing.T, nodes []*Node) {
	t.Helper()
	mustApply(t, nodes, mustCmd(NewSubmitJob(NewID(), testJob(1, `{"model":"stories260K"}`))))
	mustApply(t, nodes, mustCmd(NewRegisterMember(NewID(), "s0", "nats://s0", false)))
	mustApply(t, nodes, mustCmd(NewRegisterMember(NewID(), "s1", "nats://s1", false)))
	mustApply(t, nodes, mustCmd(NewAssign(NewID(), twoShards(1))))
}

// step begins step k and commits its facts, as the leader's loop would.
func step(t *testing.T, nodes []*Node, k int) {
	t.Helper()
	mustApply(t, nodes, mustCmd(NewBeginStep(NewID(), 1, k, 1e-4, k)))
	mustApply(t, nodes, mustCmd(NewCommitGradNorm(NewID(), 1, k, float64(k)/10)))
	mustApply(t, nodes, mustCmd(NewCommitTau(NewID(), 1, k, 0.01)))
	for _, s := range []string{"s0", "s1"} {
		mustApply(t, nodes, mustCmd(NewAckStep(NewID(), 1, k, s)))
	}
}

func without(nodes []*Node, drop *Node) []*Node {
	var out []*Node
	for _, n := range nodes {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

func peersOf(cfgs []Config) []Peer {
	var ps []Peer
	for _, c := range cfgs {
		ps = append(ps, Peer{ID: c.NodeID, Addr: c.BindAddr})
	}
	return ps
}

// startCluster bootstraps n nodes that all know each other.
func startCluster(t *testing.T, n int, tlsFor func(i int) *tls.Config) ([]*Node, []Config) {
	t.Helper()
	cfgs := make([]Config, n)
	for i := range cfgs {
		var tc *tls.Config
		if tlsFor != nil {
			tc = tlsFor(i)
		}
		cfgs[i] = testConfig(t, "c"+string(rune('0'+i)), freeAddr(t), tc)
	}
	nodes := make([]*Node, n)
	for i := range cfgs {
		cfgs[i].Bootstrap = true
		cfgs[i].Peers = peersOf(cfgs)
		nodes[i] = openNode(t, cfgs[i])
	}
	return nodes, cfgs
}

func hasPeer(ps []Peer, id string) bool {
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}
