package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

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
			log := newLogger()
			nf.role = transport.Identity{Role: transport.RoleShard, ID: id}.Name()
			if err := nf.requireAuth(log); err != nil {
				return err
			}
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
	fl.StringVar(&id, "id", "", "shard id, unique in the cluster")
	fl.BoolVar(&standby, "standby", false, "register as a standby (takes over a failed shard's layers)")
	fl.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. :9101")
	fl.StringVar(&codec, "codec", "none", "activation stream compression: none, zstd or s2")
	markRequired(cmd, "id")
	return cmd
}
