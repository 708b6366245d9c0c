package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// natsFlags are the NATS connection options shared by the cluster roles.
type natsFlags struct {
	url, token, tokenFile string
	nkey, creds           string
	cert, key, ca         string
	cluster               string
	blobs                 string
	replicas              int
}

func (f *natsFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	fl.StringVar(&f.token, "nats-token", "", "NATS authentication token (visible in ps: prefer --nats-token-file or $UNIPRUNING_NATS_TOKEN)")
	fl.StringVar(&f.tokenFile, "nats-token-file", "", "file holding the NATS authentication token")
	fl.StringVar(&f.nkey, "nats-nkey", "", "file holding a NATS user nkey seed")
	fl.StringVar(&f.creds, "nats-creds", "", "NATS .creds file")
	fl.StringVar(&f.cert, "nats-cert", "", "client TLS certificate for NATS")
	fl.StringVar(&f.key, "nats-key", "", "client TLS key for NATS")
	fl.StringVar(&f.ca, "nats-ca", "", "CA bundle that signs the NATS server certificate")
	fl.StringVar(&f.cluster, "cluster", "default", "cluster name: namespaces every NATS subject, so several jobs can share a server")
	fl.StringVar(&f.blobs, "blobs", "jetstream", "checkpoint/Γ blob store: jetstream (NATS Object Store bucket per cluster) or fs:DIR (a directory every process sees)")
	fl.IntVar(&f.replicas, "blob-replicas", 1, "replicas of the JetStream bucket when this process creates it (3 on a 3-server NATS cluster)")
}

// resolveToken takes the token from --nats-token, --nats-token-file or
// $UNIPRUNING_NATS_TOKEN, in that order.
func (f *natsFlags) resolveToken() (string, error) {
	if f.token != "" {
		return f.token, nil
	}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--nats-token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("UNIPRUNING_NATS_TOKEN"), nil
}

func (f *natsFlags) connect(name string, log *slog.Logger) (*transport.Conn, transport.Subjects, error) {
	token, err := f.resolveToken()
	if err != nil {
		return nil, transport.Subjects{}, err
	}
	opts := transport.Options{URL: f.url, Name: name, Token: token, NKeySeedFile: f.nkey, CredsFile: f.creds, Logger: log}
	if f.cert != "" || f.ca != "" {
		opts.TLS = &transport.TLSFiles{CertFile: f.cert, KeyFile: f.key, CAFile: f.ca}
	}
	conn, err := transport.Connect(opts)
	if err != nil {
		return nil, transport.Subjects{}, err
	}
	subj := transport.Subjects{Job: f.cluster}
	if _, err := subj.Coordinator(); err != nil {
		conn.Close()
		return nil, subj, fmt.Errorf("--cluster: %w", err)
	}
	return conn, subj, nil
}

func (f *natsFlags) blobStore(ctx context.Context, conn *transport.Conn) (shardrpc.BlobStore, error) {
	if dir, ok := strings.CutPrefix(f.blobs, "fs:"); ok {
		return transport.NewFSBlobStore(dir)
	}
	if f.blobs != "jetstream" {
		return nil, fmt.Errorf("--blobs %q: want jetstream or fs:DIR", f.blobs)
	}
	return transport.NewObjectBlobStoreReplicas(ctx, conn, "unipruning-"+f.cluster, f.replicas)
}

// dial connects and opens the blob store, the two things every role that
// holds checkpoints needs; the connection is closed again if the store fails.
func (f *natsFlags) dial(ctx context.Context, name string, log *slog.Logger) (*transport.Conn, transport.Subjects, shardrpc.BlobStore, error) {
	conn, subj, err := f.connect(name, log)
	if err != nil {
		return nil, subj, nil, err
	}
	blobs, err := f.blobStore(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, subj, nil, err
	}
	return conn, subj, blobs, nil
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// signalContext ends on SIGINT/SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// serveMetrics exposes reg on addr's /metrics ("" = off).
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Error("metrics endpoint stopped", "addr", addr, "err", err)
		}
	}()
}

func natsCmd() *cobra.Command {
	var cfg transport.ServerConfig
	var cert, key, ca, nkeys, routes, tokenFile string
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run a NATS server (embedded nats-server, JetStream on) for a cluster",
		Long: `Runs the message bus of a cluster: control RPCs, activation streams, heartbeats and the
JetStream Object Store that holds checkpoints. Any NATS 2.10+ server works as well; this is
the same server the one-process mode embeds.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := newLogger()
			cfg.Logger = log
			if cert != "" {
				cfg.TLS = &transport.TLSFiles{CertFile: cert, KeyFile: key, CAFile: ca}
			}
			if nkeys != "" {
				cfg.NKeys = strings.Split(nkeys, ",")
			}
			cfg.Routes = splitList(routes)
			if cfg.Token == "" && tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				cfg.Token = strings.TrimSpace(string(b))
			}
			srv, err := transport.StartServer(cfg)
			if err != nil {
				return err
			}
			log.Info("nats serving", "url", srv.ClientURL(), "jetstream", cfg.JetStream)
			ctx, cancel := signalContext()
			defer cancel()
			<-ctx.Done()
			srv.Shutdown()
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Host, "host", "127.0.0.1", "listen address (0.0.0.0 for all interfaces)")
	fl.IntVar(&cfg.Port, "port", 4222, "client port (-1: a random free port)")
	fl.BoolVar(&cfg.JetStream, "jetstream", true, "enable JetStream (the Object Store for checkpoints)")
	fl.StringVar(&cfg.StoreDir, "store", "nats-data", "JetStream storage directory")
	fl.StringVar(&cfg.Token, "token", "", "require this client token")
	fl.StringVar(&nkeys, "nkeys", "", "comma-separated public user nkeys allowed to connect")
	fl.StringVar(&cert, "tls-cert", "", "server TLS certificate (enables TLS)")
	fl.StringVar(&key, "tls-key", "", "server TLS key")
	fl.StringVar(&ca, "tls-ca", "", "CA for client certificates (mutual TLS)")
	fl.StringVar(&cfg.Name, "name", "unipruning-nats", "server name (unique per server in a cluster)")
	fl.StringVar(&tokenFile, "token-file", "", "file holding the client token")
	fl.StringVar(&cfg.ClusterName, "cluster-name", "", "join a NATS cluster of this name (with --cluster-port and --routes)")
	fl.StringVar(&cfg.ClusterHost, "cluster-host", "", "cluster listen address (default: --host)")
	fl.IntVar(&cfg.ClusterPort, "cluster-port", 0, "cluster (route) port")
	fl.StringVar(&routes, "routes", "", "comma-separated nats-route://host:port of the other servers")
	return cmd
}

func shardCmd() *cobra.Command {
	var nf natsFlags
	var id, metrics string
	var standby bool
	var codec string
	cmd := &cobra.Command{
		Use:   "shard",
		Short: "Run a shard: registers with the coordinator, owns the layers it is assigned, runs their steps",
		Long: `A shard process joins a cluster over NATS, registers with the coordinator leader and sends
heartbeats. When assigned a range of decoder layers (under an epoch) it loads only those
tensors, runs their forward/backward, metric, AdamW and mirror-descent updates, answers the
threshold histogram queries and writes checkpoints to the blob store. Calls from an older
epoch are refused (fencing). --standby holds it in reserve to replace a failed shard.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" {
				return fmt.Errorf("--id is required")
			}
			log := newLogger()
			ctx, cancel := signalContext()
			defer cancel()
			conn, subj, blobs, err := nf.dial(ctx, "shard-"+id, log)
			if err != nil {
				return err
			}
			defer conn.Close()
			c, err := transport.ParseCodec(codec)
			if err != nil {
				return err
			}
			srv, err := shardrpc.Serve(ctx, conn, subj, id, shardrpc.ServeOptions{Load: shard.Load, Blobs: blobs, Logger: log,
				StreamConfig: transport.StreamConfig{Codec: c}})
			if err != nil {
				return err
			}
			defer srv.Close()
			reg := prometheus.NewRegistry()
			registerShardMetrics(reg, srv)
			serveMetrics(metrics, reg, log)
			host, _ := os.Hostname()
			if _, err := shardrpc.RegisterWith(ctx, conn, subj, shardrpc.RegisterRequest{ID: id, Addr: fmt.Sprintf("%s/%d", host, os.Getpid()), Standby: standby}); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		},
	}
	nf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&id, "id", "", "shard id, unique in the cluster (required)")
	fl.BoolVar(&standby, "standby", false, "register as a standby (takes over a failed shard's layers)")
	fl.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. :9101")
	fl.StringVar(&codec, "codec", "none", "activation stream compression: none, zstd or s2")
	return cmd
}

type coordFlags struct {
	nats                            natsFlags
	id, bind, advertise, dir, peers string
	bootstrap                       bool
	job, out, metrics               string
	tlsCert, tlsKey, tlsCA          string
	hbTimeout, raftHB, raftElection time.Duration
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
	fl.StringVar(&f.id, "id", "", "replica id (required)")
	fl.StringVar(&f.bind, "raft-bind", "127.0.0.1:7001", "Raft listen address")
	fl.StringVar(&f.advertise, "raft-advertise", "", "Raft address peers dial (default: --raft-bind)")
	fl.StringVar(&f.dir, "raft-dir", "", "Raft data directory (log, snapshots) (required)")
	fl.StringVar(&f.peers, "peers", "", "initial replicas id=host:port,... (with --bootstrap)")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "form the cluster from --peers if the data directory is empty (safe to pass on every start)")
	fl.StringVar(&f.tlsCert, "raft-tls-cert", "", "TLS certificate for Raft (mutual TLS between replicas)")
	fl.StringVar(&f.tlsKey, "raft-tls-key", "", "TLS key for Raft")
	fl.StringVar(&f.tlsCA, "raft-tls-ca", "", "CA that signs every replica's certificate")
	fl.StringVar(&f.job, "job", "", "job JSON to submit if the cluster has none (see configs/)")
	fl.StringVar(&f.out, "out", "", "run directory for the Γ store (written by the leader that finishes) (required)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. :9100")
	fl.DurationVar(&f.hbTimeout, "heartbeat-timeout", 2*time.Second, "a shard silent this long is declared lost")
	fl.DurationVar(&f.raftHB, "raft-heartbeat-timeout", 0, "Raft follower heartbeat timeout (0: the library default, 1s)")
	fl.DurationVar(&f.raftElection, "raft-election-timeout", 0, "Raft election timeout (0: the library default, 1s)")
	fl.BoolVar(&f.stay, "stay-after-done", false, "keep running and answering status after the job ends (e.g. under a StatefulSet)")
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
		return fmt.Errorf("--id, --raft-dir and --out are required")
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
	peers, err := parsePeers(f.peers)
	if err != nil {
		return err
	}
	tcfg, err := raftTLS(f.tlsCert, f.tlsKey, f.tlsCA)
	if err != nil {
		return err
	}
	log := newLogger().With("replica", f.id)
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
		Job: jb, Finish: gammaWriter(f.out, blobs), HeartbeatTimeout: f.hbTimeout, Log: log, StayAfterDone: f.stay,
		Metrics: coordinator.NewMetrics(reg),
		OnStep: func(s coordinator.StepInfo) {
			log.Info("step", "k", s.Step, "of", s.Steps, "loss", fmt.Sprintf("%.4f", s.Loss), "tau", s.Tau, "seconds", fmt.Sprintf("%.3f", s.Seconds))
		}})
	if err := n.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	log.Info("coordinator done", "status", node.State().Status)
	return nil
}

// gammaWriter returns the coordinator's Finish: publish the Γ store into
// out and its manifest into the blob store (its parts are there already,
// keyed by their sha256), so `unipruning fetch` can rebuild it anywhere.
func gammaWriter(out string, blobs gammastore.Blobs) func(ctx context.Context, spec job.Spec, refs []job.Ref, parts []nn.Part, steps map[int]job.StepFacts) (map[string]string, error) {
	return func(ctx context.Context, spec job.Spec, refs []job.Ref, parts []nn.Part, steps map[int]job.StepFacts) (map[string]string, error) {
		ck, err := model.Open(spec.Model, spec.Tokenizer)
		if err != nil {
			return nil, err
		}
		defer ck.Close()
		man, err := searchManifest(spec, ck, steps, 0)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
		if err := writeJSONFile(filepath.Join(out, "spec.json"), spec); err != nil {
			return nil, err
		}
		key, err := gammastore.Publish(ctx, blobs, out, man, partRefs(refs, parts))
		if err != nil {
			return nil, err
		}
		return map[string]string{"gamma_manifest": key}, nil
	}
}

func fetchCmd() *cobra.Command {
	var nf natsFlags
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Rebuild a cluster job's Γ store from the blob store (on any host that reaches NATS)",
		Long: `Asks a coordinator for the finished job's results and writes its Γ store (gamma.json and
the parts, each checked against its sha256) into --out, ready for 'unipruning extract'.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("output %s already exists (pass --force to replace it)", out)
			}
			ctx, cancel := signalContext()
			defer cancel()
			conn, subj, err := nf.connect("fetch", newLogger())
			if err != nil {
				return err
			}
			defer conn.Close()
			st, err := queryStatus(ctx, conn, subj)
			if err != nil {
				return err
			}
			key := st.Results["gamma_manifest"]
			if key == "" {
				return fmt.Errorf("job %s is %q and has no Γ store yet", st.Job, st.State)
			}
			blobs, err := nf.blobStore(ctx, conn)
			if err != nil {
				return err
			}
			return model.WriteDirAtomically(out, force, func(tmp string) error { return gammastore.Fetch(ctx, blobs, key, tmp) })
		},
	}
	nf.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "directory to write the Γ store into (required)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing directory")
	return cmd
}

// queryStatus asks any coordinator replica for the job's status.
func queryStatus(ctx context.Context, conn *transport.Conn, subj transport.Subjects) (coordinator.Status, error) {
	var st coordinator.Status
	s, err := coordinator.StatusSubject(subj)
	if err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := transport.CallJSON(ctx, conn, s, coordinator.StatusRequest{}, &st, transport.CallOptions{Timeout: 3 * time.Second}); err != nil {
		return st, fmt.Errorf("no coordinator answered on %s: %w", s, err)
	}
	return st, nil
}

func statusCmd() *cobra.Command {
	var nf natsFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a cluster's job: step, leader, epoch, shards and their layers, step time",
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, subj, err := nf.connect("status", newLogger())
			if err != nil {
				return err
			}
			defer conn.Close()
			st, err := queryStatus(context.Background(), conn, subj)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(st)
			}
			printStatus(st)
			return nil
		},
	}
	nf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(st coordinator.Status) {
	fmt.Printf("job %s: %s", st.Job, st.State)
	if st.Error != "" {
		fmt.Printf(" (%s)", st.Error)
	}
	fmt.Printf("\nstep %d/%d, epoch %d, last step %.3fs, rollbacks %d\nleader %s (%s), answered by %s\n",
		st.Step, st.Steps, st.Epoch, st.LastStepSeconds, st.Rollbacks, st.Leader, st.LeaderAddr, st.Coordinator)
	if st.LastStepSeconds > 0 {
		fmt.Printf("throughput %.2f steps/s\n", 1/st.LastStepSeconds)
	}
	for _, s := range st.Shards {
		alive := "alive"
		if !s.Alive {
			alive = "LOST"
		}
		fmt.Printf("  shard %-12s %-6s layers %-8s standby=%v\n", s.ID, alive, s.Layers, s.Standby)
	}
}

// quietLogger keeps the one-process mode's console to warnings.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// registerShardMetrics exposes a shard server's state and pipe counters.
func registerShardMetrics(reg *prometheus.Registry, srv *shardrpc.Server) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("unipruning_shard_epoch", "Assignment epoch the shard serves.", func() float64 { return float64(srv.Status().Epoch) })
	gauge("unipruning_shard_step", "Last step whose Γ the shard applied.", func() float64 { return float64(srv.Status().Step) })
	gauge("unipruning_shard_layers", "Decoder layers the shard owns.", func() float64 {
		p := srv.Status().Part
		return float64(p.To - p.From)
	})
	// The pipe is rebuilt at every epoch, so its counters are per epoch.
	gauge("unipruning_shard_pipe_bytes_sent", "Activation/gradient bytes sent to neighbours in the current epoch.", func() float64 { return float64(srv.PipeStats().BytesSent) })
	gauge("unipruning_shard_pipe_bytes_received", "Activation/gradient bytes received in the current epoch.", func() float64 { return float64(srv.PipeStats().BytesReceived) })
	gauge("unipruning_shard_pipe_retransmits", "Frames retransmitted on the pipe in the current epoch.", func() float64 { return float64(srv.PipeStats().Retransmits) })
}
