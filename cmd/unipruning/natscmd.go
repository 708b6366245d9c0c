package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/transport"
)

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
