package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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
