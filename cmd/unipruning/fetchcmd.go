package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/transport"
)

// fetchTimeout bounds a whole fetch (status query and every blob).
const fetchTimeout = 30 * time.Minute

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
			if _, err := os.Stat(out); err == nil && !force {
				return fmt.Errorf("output %s already exists (pass --force to replace it)", out)
			}
			ctx, cancel := signalContext()
			defer cancel()
			nf.role = transport.RoleClient
			ctx, stop := context.WithTimeout(ctx, fetchTimeout) // no transfer waits forever
			defer stop()
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
				if st.State == "failed" {
					return fmt.Errorf("job %s failed (%s): %s; it has no Γ store", st.Job, st.Class, st.Error)
				}
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
	_ = cmd.Flags().MarkHidden("insecure") // a client needs no permission to be unauthenticated
	cmd.Flags().StringVar(&out, "out", "", "directory to write the Γ store into")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing directory")
	markRequired(cmd, "out")
	return cmd
}
