package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

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
	auth                  string // credentials directory (unipruning creds)
	insecure              bool
	// role names this process's credential in --auth: "coordinator",
	// "shard-<id>" or "client"; set by the command before connecting.
	role string
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
	fl.StringVar(&f.auth, "auth", "", "credentials directory made by 'unipruning creds': this role's nkey seed, ca.pem (TLS) and roles.json (who may call what)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow running a cluster role without authentication (trusted test networks only: anyone on the bus can then drive the job)")
}

// errNoAuth is the refusal of a cluster role started without credentials.
var errNoAuth = usageError{errors.New("refusing to run a cluster role without authentication: pass --auth DIR " +
	"(made by 'unipruning creds'), or --insecure on a trusted test network only")}

// requireAuth refuses to start a cluster role that has no credentials
// unless --insecure says so; a shared token is accepted with a warning
// (every role then holds every right).
func (f *natsFlags) requireAuth(log *slog.Logger) error {
	shared := f.token != "" || f.tokenFile != "" || os.Getenv("UNIPRUNING_NATS_TOKEN") != ""
	switch {
	case f.insecure && f.auth != "":
		return conflictingFlags("insecure", "auth")
	case f.insecure:
		log.Warn("running without authentication (--insecure): anyone who reaches NATS can drive this job")
	case f.auth == "" && f.nkey == "" && f.creds == "" && !shared:
		return errNoAuth
	case f.auth == "" && shared:
		log.Warn("a shared NATS token authenticates every role alike; use --auth for per-role credentials")
	}
	return nil
}

// applyAuth fills opts from the --auth directory: the role's nkey seed,
// the roster and, where ca.pem exists, TLS verified against it.
func (f *natsFlags) applyAuth(opts *transport.Options) error {
	if f.auth == "" {
		return nil
	}
	roster, err := transport.LoadRoster(filepath.Join(f.auth, credsRoster))
	if err != nil {
		return badFlag("auth", f.auth, "%v", err)
	}
	if roster.Cluster != f.cluster {
		return badFlag("auth", f.auth, "the credentials are for cluster %q, this process is in --cluster %q", roster.Cluster, f.cluster)
	}
	if f.role == "" {
		return errors.New("internal: no role for --auth")
	}
	if opts.NKeySeedFile == "" {
		opts.NKeySeedFile = filepath.Join(f.auth, f.role+credsSeedSuffix)
		if _, err := os.Stat(opts.NKeySeedFile); err != nil {
			return badFlag("auth", f.auth, "no credential for role %s here (%v)", f.role, err)
		}
	}
	if ca := filepath.Join(f.auth, credsCA); opts.TLS == nil {
		if _, err := os.Stat(ca); err == nil {
			opts.TLS = &transport.TLSFiles{CAFile: ca}
		}
	}
	opts.Roster = roster
	return nil
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
	if err := f.applyAuth(&opts); err != nil {
		return nil, transport.Subjects{}, err
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
	return transport.NewObjectBlobStoreReplicas(ctx, conn, transport.BlobBucket(f.cluster), f.replicas)
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
