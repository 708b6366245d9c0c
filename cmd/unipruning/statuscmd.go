package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/transport"
)

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
			nf.role = transport.RoleClient
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
	_ = cmd.Flags().MarkHidden("insecure") // a client needs no permission to be unauthenticated
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(st coordinator.Status) {
	fmt.Printf("job %s: %s", st.Job, st.State)
	if st.Class != "" {
		fmt.Printf(" [%s]", st.Class)
	}
	if st.Error != "" {
		fmt.Printf(" (%s)", st.Error)
	}
	if st.State == "failed" && st.Class != "invalid_input" {
		fmt.Printf("\nretry with: unipruning retry %s (coordinators running with --stay-after-done)", st.Job)
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
