package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/transport"
)

func credsCmd() *cobra.Command {
	var out, cluster, shards, hosts string
	var force bool
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Make a development PKI for a cluster: a CA, TLS certificates and one credential per role",
		Long: `Writes a credentials directory for one cluster (--cluster): a CA (ca.pem, ca-key.pem), the
NATS server's TLS pair (nats-server.pem/-key.pem), a TLS pair for the coordinators' Raft
links (raft.pem/-key.pem), one nkey seed per role (coordinator.nk, shard-<id>.nk for each
--shard-ids id, client.nk) and roles.json, the public roster that binds each key to its role.

Every cluster role then takes --auth DIR: 'nats' serves TLS and gives each key the subject
permissions of its role; 'coordinator', 'shard', 'status' and 'fetch' authenticate with
their role's key, verify the server against ca.pem and sign their requests. A shard's key
cannot drive other shards, spoof their heartbeats, register under another id or read
their control calls; only coordinators send control calls (README, "Threat model").
Secrets are written mode 0600; copy to each host only its own role's seed.`,
		Example: `  unipruning creds --out creds --cluster prod --shard-ids s0,s1,s2 --hosts localhost,127.0.0.1,nats.internal
  unipruning nats --auth creds --store data/nats
  unipruning shard --id s0 --auth creds --cluster prod --nats tls://nats.internal:4222`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := devPKI{cluster: cluster, shards: splitList(shards), hosts: splitList(hosts)}
			if err := transport.ValidateToken(cluster); err != nil {
				return badFlag("cluster", cluster, "%v", err)
			}
			if len(p.shards) == 0 {
				return badFlag("shard-ids", shards, "name at least one shard id")
			}
			for _, s := range p.shards {
				if err := transport.ValidateToken(s); err != nil {
					return badFlag("shard-ids", shards, "%v", err)
				}
			}
			if len(p.hosts) == 0 {
				return badFlag("hosts", hosts, "name at least one host the certificates are for")
			}
			err := model.WriteDirAtomically(out, force, func(tmp string) error {
				if err := os.Chmod(tmp, 0o700); err != nil {
					return err
				}
				return p.write(tmp)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "credentials for cluster %q (%d shards) written to %s; see %s/%s\n",
				cluster, len(p.shards), out, out, credsReadme)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "directory to create (mode 0700)")
	fl.StringVar(&cluster, "cluster", "default", "cluster name the permissions are scoped to (the roles' --cluster)")
	fl.StringVar(&shards, "shard-ids", "s0,s1,s2", "comma-separated shard ids, one credential each (standbys included)")
	fl.StringVar(&hosts, "hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs the NATS and Raft certificates are valid for")
	fl.BoolVar(&force, "force", false, "replace an existing directory")
	markRequired(cmd, "out")
	return cmd
}
