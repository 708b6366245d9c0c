package consensus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func TestSingleNodeBootstrapPersists(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(t, "solo", freeAddr(t), nil)
	cfg.Bootstrap = true
	n := openNode(t, cfg)
	if !n.bootstrapped {
		t.Fatal("first start did not bootstrap")
	}
	lch, cancel := n.SubscribeLeader()
	defer cancel()
	one := []*Node{n}
	waitLeader(t, one...)
	awaitValue(t, lch, true)

	seedJob(t, one)
	step(t, one, 1)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	step(t, one, 2) // after the snapshot: replayed from the log on restart
	want := n.State()
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for range lch { // closed on shutdown
	}
	if _, err := n.Apply(ctxFor(t, testWait), mustCmd(NewSetResult(NewID(), "k", "v"))); !errors.Is(err, ErrShutdown) {
		t.Fatalf("apply after shutdown: %v", err)
	}

	n2 := openNode(t, cfg) // Bootstrap is still set, as a restarted process would have it
	if n2.bootstrapped {
		t.Fatal("restart bootstrapped again")
	}
	if got := waitConverged(t, n2); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after restart:\n got %+v\nwant %+v", got, want)
	}
	step(t, []*Node{n2}, 3)
}

func awaitValue(t *testing.T, ch <-chan bool, want bool) {
	t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatal("leader channel closed")
			}
			if v == want {
				return
			}
		case <-timeout:
			t.Fatalf("leader channel never reported %v", want)
		}
	}
}

// TestClusterFailoverAndRestart runs a 3-node cluster: replication, a
// follower's redirect, failover after the leader stops, a retried command
// across the failover, and a restart that catches up by snapshot.
func TestClusterFailoverAndRestart(t *testing.T) {
	checkGoroutines(t)
	nodes, cfgs := startCluster(t, 3, nil)
	seedJob(t, nodes)
	step(t, nodes, 1)
	checkRedirect(t, nodes)

	retry := mustCmd(NewSetResult(NewID(), "gamma", "runs/1/gamma"))
	first := mustApply(t, nodes, retry)
	waitConverged(t, nodes...)

	old := waitLeader(t, nodes...)
	start := time.Now()
	if err := old.Shutdown(); err != nil {
		t.Fatal(err)
	}
	rest := without(nodes, old)
	leader := waitLeader(t, rest...)
	failover := time.Since(start)
	t.Logf("failover: %s took over from %s in %v (heartbeat/election timeout %v)", leader.ID(), old.ID(), failover, testHeartbeat)
	if failover > 5*time.Second {
		t.Errorf("failover took %v", failover)
	}
	// The client did not see the first reply; retrying on the new leader
	// returns the original result instead of applying twice.
	if again := mustApply(t, rest, retry); again != first {
		t.Fatalf("retry after failover returned %+v, first %+v", again, first)
	}
	for k := 2; k <= 6; k++ {
		step(t, rest, k)
	}
	onLeader(t, rest, "snapshot", func(_ context.Context, n *Node) error { return n.Snapshot() })
	restartCatchesUp(t, cfgs[indexOf(nodes, old)], rest)
}

// checkRedirect applies on a follower and expects a NotLeaderError naming
// the leader, so a caller can forward the command.
func checkRedirect(t *testing.T, nodes []*Node) {
	t.Helper()
	eventually(t, "a follower to name the leader", func() bool {
		leader := waitLeader(t, nodes...)
		follower := without(nodes, leader)[0]
		_, err := follower.Apply(ctxFor(t, testWait), mustCmd(NewSetResult(NewID(), "k", "v")))
		if err == nil {
			return false // it was elected meanwhile; ask the next follower
		}
		var nl *NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("apply on follower: %v", err)
		}
		return nl.LeaderID == leader.ID() && nl.LeaderAddr == leader.Addr()
	})
}

// restartCatchesUp reopens a stopped node from its DataDir and checks that
// it rejoins without bootstrapping and converges through the leader's
// snapshot (the log it missed has been compacted away).
func restartCatchesUp(t *testing.T, cfg Config, rest []*Node) {
	t.Helper()
	restarted := openNode(t, cfg)
	if restarted.bootstrapped {
		t.Fatal("restarted node bootstrapped again")
	}
	st := waitConverged(t, append(rest, restarted)...)
	if st.Step != 6 || st.Results["gamma"] != "runs/1/gamma" {
		t.Fatalf("converged state: step %d results %v", st.Step, st.Results)
	}
	// Raft records the installed snapshot just after restoring the FSM.
	eventually(t, "the restarted node to record the leader's snapshot", func() bool {
		idx, _ := strconv.Atoi(restarted.raft.Stats()["last_snapshot_index"])
		return idx > 0
	})
	servers, err := restarted.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("servers after restart: %v %v", servers, err)
	}
}

func indexOf(nodes []*Node, n *Node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

func TestJoinByAddVoterAndRemove(t *testing.T) {
	checkGoroutines(t)
	acfg := testConfig(t, "a", "127.0.0.1:0", nil)
	acfg.Bootstrap = true
	a := openNode(t, acfg)
	seedJob(t, []*Node{a})

	b := openNode(t, testConfig(t, "b", "127.0.0.1:0", nil))
	_, err := b.Apply(ctxFor(t, testWait), mustCmd(NewSetResult(NewID(), "k", "v")))
	if nl := (*NotLeaderError)(nil); !errors.As(err, &nl) || nl.LeaderID != "" {
		t.Fatalf("apply on an unjoined node: %v", err)
	}
	both := []*Node{a, b}
	addB := func(ctx context.Context, n *Node) error { return n.AddVoter(ctx, b.ID(), b.Addr()) }
	onLeader(t, []*Node{a}, "add b", addB)
	onLeader(t, both, "add b again", addB) // adding a member twice is harmless
	waitConverged(t, both...)

	follower := without(both, waitLeader(t, both...))[0]
	if err := follower.AddVoter(ctxFor(t, testWait), "c", "127.0.0.1:1"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("AddVoter on a follower: %v", err)
	}
	servers, err := a.Servers()
	if err != nil || len(servers) != 2 || !hasPeer(servers, "b") {
		t.Fatalf("servers: %v %v", servers, err)
	}
	onLeader(t, both, "remove b", func(ctx context.Context, n *Node) error { return n.RemoveServer(ctx, "b") })
	eventually(t, "a to drop b", func() bool {
		servers, _ := a.Servers()
		return len(servers) == 1 && !hasPeer(servers, "b")
	})
	step(t, []*Node{a}, 1) // a alone is a majority again
}

func TestOpenConfig(t *testing.T) {
	checkGoroutines(t)
	if _, err := Open(Config{}); err == nil {
		t.Error("opened without NodeID/BindAddr/DataDir")
	}
	if _, err := Open(testConfig(t, "x", "0.0.0.0:0", nil)); err == nil {
		t.Error("bound to all interfaces without an advertise address")
	}
	cfg := testConfig(t, "x", "127.0.0.1:0", nil)
	cfg.Bootstrap = true
	cfg.Peers = []Peer{{ID: "x", Addr: "127.0.0.1:1"}}
	if _, err := Open(cfg); err == nil {
		t.Error("bootstrapped with a peer list that contradicts the node's address")
	}
	for _, adv := range []string{"0.0.0.0:7000", "host:0", "nohost", ":7000"} {
		c := testConfig(t, "x", "127.0.0.1:0", nil)
		c.AdvertiseAddr = adv
		if _, err := Open(c); err == nil {
			t.Errorf("accepted advertise address %q", adv)
		}
	}
	for name, tc := range map[string]*tls.Config{
		"no CA":   {Certificates: []tls.Certificate{{}}},
		"no cert": {RootCAs: x509.NewCertPool()},
	} {
		if _, err := Open(testConfig(t, "x", "127.0.0.1:0", tc)); err == nil {
			t.Errorf("accepted a TLS config with %s", name)
		}
	}

	adv := testConfig(t, "adv", "127.0.0.1:0", nil)
	adv.AdvertiseAddr = "coordinator-0.example:7000"
	if n := openNode(t, adv); n.Addr() != adv.AdvertiseAddr {
		t.Errorf("Addr() = %q, want the advertised %q", n.Addr(), adv.AdvertiseAddr)
	}

	first := openNode(t, testConfig(t, "y", "127.0.0.1:0", nil))
	dup := testConfig(t, "y2", "127.0.0.1:0", nil)
	dup.DataDir = first.cfg.DataDir
	if _, err := Open(dup); err == nil {
		t.Error("two nodes opened the same DataDir")
	}
}

// TestExpectedLevel: raft's heartbeat-timeout warning is information when
// the node has never seen a leader (every start), a warning when a known
// leader went silent; other warnings keep their level.
func TestExpectedLevel(t *testing.T) {
	cases := []struct {
		level hclog.Level
		msg   string
		args  []any
		want  hclog.Level
	}{
		{hclog.Warn, initialElection, []any{"last-leader-addr", raft.ServerAddress(""), "last-leader-id", raft.ServerID("")}, hclog.Info},
		{hclog.Warn, initialElection, []any{"last-leader-addr", raft.ServerAddress("10.0.0.1:7001"), "last-leader-id", raft.ServerID("c1")}, hclog.Warn},
		{hclog.Warn, "failed to contact quorum of nodes, stepping down", nil, hclog.Warn},
		{hclog.Error, initialElection, nil, hclog.Error},
	}
	for _, c := range cases {
		if got := expectedLevel(c.level, c.msg, c.args); got != c.want {
			t.Errorf("%v %q %v: %v, want %v", c.level, c.msg, c.args, got, c.want)
		}
	}
}
