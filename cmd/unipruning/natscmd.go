package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/transport"
)

func natsCmd() *cobra.Command {
	var cfg transport.ServerConfig
	var cert, key, ca, nkeys, routes, tokenFile, auth string
	var insecure bool
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
			if err := natsSecurity(&cfg, auth, insecure, log); err != nil {
				return err
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
	fl.StringVar(&auth, "auth", "", "credentials directory made by 'unipruning creds': serve TLS with DIR/nats-server.pem and admit the keys of DIR/roles.json, each with its role's subject permissions")
	fl.BoolVar(&insecure, "insecure", false, "serve without any authentication (trusted test networks only)")
	return cmd
}

// natsSecurity applies --auth and refuses a server without authentication
// unless --insecure.
func natsSecurity(cfg *transport.ServerConfig, auth string, insecure bool, log *slog.Logger) error {
	switch {
	case auth != "" && insecure:
		return conflictingFlags("auth", "insecure")
	case auth != "" && (cfg.Token != "" || len(cfg.NKeys) > 0):
		return usageError{fmt.Errorf("--auth replaces --token/--token-file/--nkeys: give one of them")}
	case auth != "":
		r, err := transport.LoadRoster(filepath.Join(auth, credsRoster))
		if err != nil {
			return badFlag("auth", auth, "%v", err)
		}
		cfg.Roster = r
		if cfg.TLS == nil {
			cfg.TLS = &transport.TLSFiles{CertFile: filepath.Join(auth, credsServer+".pem"), KeyFile: filepath.Join(auth, credsServer+"-key.pem")}
		}
		log.Info("per-role authentication", "cluster", r.Cluster, "identities", len(r.Identities), "tls", cfg.TLS.CertFile)
	case cfg.Token == "" && len(cfg.NKeys) == 0 && !insecure:
		return usageError{fmt.Errorf("refusing to serve a cluster without authentication: pass --auth DIR (made by 'unipruning creds'), or --insecure on a trusted test network only")}
	case insecure:
		log.Warn("serving without authentication (--insecure): anyone who reaches this port can drive and read every job")
	}
	return nil
}
