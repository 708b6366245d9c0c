package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// TestClusterSurvivesShardAndLeaderLoss is the in-process counterpart of the
// chaos suite (which kills real processes and containers behind the `chaos`
// tag): 3 coordinator replicas over a 3-node Raft, 2 shards, all in this
// process over an embedded NATS server. Mid-search a shard's NATS connection
// is dropped without a goodbye and a replacement with the same id comes up;
// later the Raft leader dies. The job must finish with bitwise the Γ of the
// one-process search.
func TestClusterSurvivesShardAndLeaderLoss(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	ref := search(t, spec, 2)

	srv, err := transport.StartServer(transport.ServerConfig{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	out := filepath.Join(t.TempDir(), "cluster")
	nf := natsFlags{url: srv.ClientURL(), cluster: "failover", blobs: "fs:" + filepath.Join(out, "checkpoints")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	shards := map[string]func(){}
	var shardMu sync.Mutex
	startShard := func(id string) {
		conn, subj, blobs, err := nf.dial(ctx, "shard-"+id, quietLogger())
		if err != nil {
			t.Error(err)
			return
		}
		s, err := shardrpc.Serve(ctx, conn, subj, id, shardrpc.ServeOptions{Load: shard.Load, Blobs: blobs, Logger: quietLogger()})
		if err != nil {
			conn.Close()
			t.Error(err)
			return
		}
		shardMu.Lock()
		shards[id] = func() { conn.Close(); s.Close() } // connection first: no goodbye
		shardMu.Unlock()
		go shardrpc.Register(ctx, conn, subj, id, "in-process")
	}
	for _, id := range []string{"s0", "s1"} {
		startShard(id)
	}
	defer func() {
		shardMu.Lock()
		defer shardMu.Unlock()
		for _, stop := range shards {
			stop()
		}
	}()

	reps := startReplicas(t, ctx, nf, out, spec)
	var killShard, killLeader sync.Once
	var shardLost, leaderLost time.Time
	for i := range reps {
		reps[i].onStep = func(s coordinator.StepInfo) {
			switch {
			case s.Step == 4:
				killShard.Do(func() {
					shardLost = time.Now()
					shardMu.Lock()
					stop := shards["s1"]
					shardMu.Unlock()
					go func() { stop(); startShard("s1") }()
				})
			case s.Step == 8:
				killLeader.Do(func() { leaderLost = time.Now(); go reps[i].kill() })
			}
		}
	}
	errs := make(chan error, len(reps))
	for i := range reps {
		go func(r *replica) { errs <- r.run(ctx) }(&reps[i])
	}
	finished := 0
	for range reps {
		err := <-errs
		switch {
		case err == nil:
			finished++
		case errors.Is(err, context.Canceled): // the killed leader
		default:
			t.Fatalf("replica: %v", err)
		}
	}
	if shardLost.IsZero() || leaderLost.IsZero() {
		t.Fatalf("faults not injected (shard %v, leader %v)", shardLost, leaderLost)
	}
	if finished != len(reps)-1 {
		t.Fatalf("%d replicas finished, want %d", finished, len(reps)-1)
	}
	// Epoch 1 is the first assignment; the lost shard and the new leader
	// must each have fenced off the old one.
	for i := range reps {
		if r := &reps[i]; !r.killed {
			if ep := r.node.State().Assignment.Epoch; ep < 3 {
				t.Fatalf("replica %s ends at epoch %d: a fault went unnoticed", r.cfg.ID, ep)
			} else {
				t.Logf("replica %s ends at epoch %d", r.cfg.ID, ep)
			}
		}
	}
	requireSameGamma(t, ref, out, "after a lost shard and a lost leader, against the one-process search")
}

// replica is one coordinator of the in-process cluster.
type replica struct {
	node   *consensus.Node
	conn   *transport.Conn
	cfg    coordinator.NodeConfig
	onStep func(coordinator.StepInfo)
	cancel context.CancelFunc
	killed bool // set before the replica's run returns
}

func (r *replica) run(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	r.cfg.OnStep = func(s coordinator.StepInfo) { r.onStep(s) }
	return coordinator.NewNode(r.cfg).Run(ctx)
}

// kill stops the replica abruptly: its step loop, its Raft node, its NATS
// connection.
func (r *replica) kill() {
	r.killed = true
	r.cancel()
	r.node.Shutdown()
	r.conn.Close()
}

func startReplicas(t *testing.T, ctx context.Context, nf natsFlags, out string, spec job.Spec) []replica {
	t.Helper()
	spec, err := resolveSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	job := &job.Job{ID: "failover-" + spec.Hash()[:12], Spec: spec, Shards: 2}
	peers := make([]consensus.Peer, 3)
	for i := range peers {
		peers[i] = consensus.Peer{ID: fmt.Sprintf("c%d", i), Addr: freeAddr(t)}
	}
	reps := make([]replica, len(peers))
	for i, p := range peers {
		node, err := consensus.Open(consensus.Config{NodeID: p.ID, BindAddr: p.Addr, DataDir: t.TempDir(),
			Bootstrap: true, Peers: peers, Logger: slog.New(slog.DiscardHandler), // dial errors to the dead leader
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Shutdown() })
		conn, subj, blobs, err := nf.dial(ctx, "coordinator-"+p.ID, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		reps[i] = replica{node: node, conn: conn, cfg: coordinator.NodeConfig{ID: p.ID, Raft: node, Conn: conn, Subj: subj,
			Job: job, Finish: gammaWriter(out, blobs), Log: quietLogger(),
			HeartbeatTimeout: 500 * time.Millisecond, Linger: 500 * time.Millisecond}}
	}
	return reps
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
