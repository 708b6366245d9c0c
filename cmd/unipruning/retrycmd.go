package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/transport"
)

func retryCmd() *cobra.Command {
	var nf natsFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "retry JOB",
		Short: "Reopen a failed cluster job: the leader resumes it from its newest intact checkpoint",
		Long: `A failed job is final: every coordinator replica reports the same failure, across
restarts, and none resumes it on its own. 'unipruning retry JOB' is the user's decision
to try again (e.g. after fixing what failed): the leader records the retry in Raft and
resumes the job under a new epoch from the newest checkpoint whose images are intact
(or from step 0). The coordinators must be running: a replica that ended with the job
exits unless started with --stay-after-done, so restart them with that flag first.

A job that failed as invalid input (class invalid_input in 'unipruning status') fails
again until its input is fixed; a done job cannot be retried.

Retrying changes the job, so in an authenticated cluster it takes the coordinators'
credentials (--nats-creds or --nats-nkey of the coordinator role): a client credential
may only read status and fetch results.`,
		Example: `  unipruning status --nats nats://127.0.0.1:4222 --cluster prod
  unipruning retry chaos-global --reason "disk freed" --nats nats://127.0.0.1:4222 --cluster prod`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, subj, err := nf.connect("retry", newLogger())
			if err != nil {
				return err
			}
			defer conn.Close()
			msg, err := retryJob(cmd.Context(), conn, subj, args[0], reason)
			if err != nil {
				return err
			}
			logf("%s", msg)
			return nil
		},
	}
	nf.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why the job is retried (recorded in the coordinators' log)")
	return cmd
}

// retryJob asks the cluster's leader to reopen the failed job id.
func retryJob(ctx context.Context, conn *transport.Conn, subj transport.Subjects, id, reason string) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := queryStatus(ctx, conn, subj)
	if err != nil {
		return "", err
	}
	switch {
	case st.Job != id:
		return "", fmt.Errorf("the cluster runs job %q, not %q", st.Job, id)
	case st.State != consensus.StatusFailed:
		return "", fmt.Errorf("job %s is %s; only a failed job can be retried", id, st.State)
	case st.Leader == "":
		return "", fmt.Errorf("job %s: no coordinator leads at the moment; try again", id)
	}
	s, err := coordinator.RetrySubject(subj, st.Leader)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var rep coordinator.RetryReply
	if err := transport.CallJSON(ctx, conn, s, coordinator.RetryRequest{Job: id, Reason: reason}, &rep,
		transport.CallOptions{Timeout: 10 * time.Second, Retries: 2}); err != nil {
		return "", fmt.Errorf("retry %s via the leader %s: %w", id, st.Leader, err)
	}
	return rep.Message, nil
}
