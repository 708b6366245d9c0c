package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/transport"
)

type coordFlags struct {
	nats                            natsFlags
	id, bind, advertise, dir, peers string
	bootstrap                       bool
	job, out, metrics               string
	tlsCert, tlsKey, tlsCA          string
	hbTimeout, raftHB, raftElection time.Duration
	shardWait                       time.Duration
	stay                            bool
}

func coordinatorCmd() *cobra.Command {
	var f coordFlags
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator replica (Raft): the leader drives the search, the others take over on failure",
		Long: `A coordinator replica keeps the job's small facts in Raft (job spec, layer assignment and
epoch, per-step thresholds and gradient norms, checkpoint manifests, status). The leader
plans the layers over the registered shards, runs the step loop over NATS, reduces the
gradient norm and selects the exact model-wide threshold, records checkpoints, and on a
shard loss bumps the epoch, reassigns, rolls every shard back to the newest common
checkpoint and replays. When the leader dies another replica takes over the same way.
The leader that finishes writes the Γ store into --out.`,
		Example: `  unipruning coordinator --id c1 --raft-bind 127.0.0.1:7001 --raft-dir data/c1 \
      --peers c1=127.0.0.1:7001,c2=127.0.0.1:7002,c3=127.0.0.1:7003 --bootstrap \
      --job configs/job-stories260k.json --out runs/cluster --nats nats://127.0.0.1:4222`,
		RunE: func(cmd *cobra.Command, args []string) error { return runCoordinator(f) },
	}
	f.nats.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "replica id")
	fl.StringVar(&f.bind, "raft-bind", "127.0.0.1:7001", "Raft listen address")
	fl.StringVar(&f.advertise, "raft-advertise", "", "Raft address peers dial (default: --raft-bind)")
	fl.StringVar(&f.dir, "raft-dir", "", "Raft data directory (log, snapshots)")
	fl.StringVar(&f.peers, "peers", "", "initial replicas id=host:port,... (with --bootstrap)")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "form the cluster from --peers if the data directory is empty (safe to pass on every start)")
	fl.StringVar(&f.tlsCert, "raft-tls-cert", "", "TLS certificate for Raft (mutual TLS between replicas; default with --auth: DIR/raft.pem)")
	fl.StringVar(&f.tlsKey, "raft-tls-key", "", "TLS key for Raft")
	fl.StringVar(&f.tlsCA, "raft-tls-ca", "", "CA that signs every replica's certificate")
	fl.StringVar(&f.job, "job", "", "job JSON to submit if the cluster has none (see configs/)")
	fl.StringVar(&f.out, "out", "", "run directory for the Γ store (written by the leader that finishes)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. :9100")
	fl.DurationVar(&f.hbTimeout, "heartbeat-timeout", 2*time.Second, "a shard silent this long is declared lost")
	fl.DurationVar(&f.raftHB, "raft-heartbeat-timeout", 0, "Raft follower heartbeat timeout (0: the library default, 1s)")
	fl.DurationVar(&f.raftElection, "raft-election-timeout", 0, "Raft election timeout (0: the library default, 1s)")
	fl.BoolVar(&f.stay, "stay-after-done", false, "keep running and answering status after the job ends (e.g. under a StatefulSet); needed for 'unipruning retry' of a failed job")
	fl.DurationVar(&f.shardWait, "shard-wait", 2*time.Minute, "an attempt that finds too few live shards this long fails (transiently: retried with backoff, then the job fails)")
	markRequired(cmd, "id", "raft-dir", "out")
	return cmd
}

func raftTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("raft TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("raft TLS CA %s holds no certificate", ca)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ClientCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func parsePeers(s string) ([]consensus.Peer, error) {
	var ps []consensus.Peer
	for _, p := range splitList(s) {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers entry %q: want id=host:port", p)
		}
		ps = append(ps, consensus.Peer{ID: id, Addr: addr})
	}
	return ps, nil
}

func runCoordinator(f coordFlags) error {
	if f.id == "" || f.dir == "" || f.out == "" {
		return usageError{fmt.Errorf("--id, --raft-dir and --out are required")}
	}
	var jb *job.Job
	if f.job != "" {
		b, err := os.ReadFile(f.job)
		if err != nil {
			return err
		}
		if jb, err = job.Parse(b); err != nil {
			return err
		}
	}
	log := newLogger().With("replica", f.id)
	f.nats.role = transport.RoleCoordinator
	if err := f.nats.requireAuth(log); err != nil {
		return err
	}
	peers, err := parsePeers(f.peers)
	if err != nil {
		return err
	}
	if f.tlsCert == "" && f.tlsKey == "" && f.tlsCA == "" && f.nats.auth != "" {
		// The credentials directory carries the replicas' Raft TLS pair.
		f.tlsCert, f.tlsKey = filepath.Join(f.nats.auth, credsRaft+".pem"), filepath.Join(f.nats.auth, credsRaft+"-key.pem")
		f.tlsCA = filepath.Join(f.nats.auth, credsCA)
	}
	tcfg, err := raftTLS(f.tlsCert, f.tlsKey, f.tlsCA)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	node, err := consensus.Open(consensus.Config{NodeID: f.id, BindAddr: f.bind, AdvertiseAddr: f.advertise,
		DataDir: f.dir, Bootstrap: f.bootstrap, Peers: peers, TLS: tcfg, Logger: log,
		HeartbeatTimeout: f.raftHB, ElectionTimeout: f.raftElection})
	if err != nil {
		return err
	}
	defer node.Shutdown()
	conn, subj, blobs, err := f.nats.dial(ctx, "coordinator-"+f.id, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := prometheus.NewRegistry()
	serveMetrics(f.metrics, reg, log)
	n := coordinator.NewNode(coordinator.NodeConfig{ID: f.id, Raft: node, Conn: conn, Subj: subj,
		Job: jb, Check: checkJob, ShardWait: f.shardWait, Finish: gammaWriter(f.out, blobs), HeartbeatTimeout: f.hbTimeout, Log: log, StayAfterDone: f.stay,
		Metrics: coordinator.NewMetrics(reg),
		OnStep: func(s coordinator.StepInfo) {
			log.Info("step", "k", s.Step, "of", s.Steps, "loss", fmt.Sprintf("%.4f", s.Loss), "tau", s.Tau, "seconds", fmt.Sprintf("%.3f", s.Seconds))
		}})
	if err := n.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("coordinator done", "status", node.State().Status, "err", err)
		return err // a failed job: exit status 2 for invalid input, else 1
	}
	log.Info("coordinator done", "status", node.State().Status)
	return nil
}
