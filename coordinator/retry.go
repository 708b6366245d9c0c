package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/transport"
)

// RetryRequest asks the leader to reopen a failed job (`unipruning
// retry JOB`).
type RetryRequest struct {
	Job    string `json:"job"`
	Reason string `json:"reason,omitempty"`
}

// RetryReply says what the leader did.
type RetryReply struct {
	Message string `json:"message"`
}

// RetrySubject is where replica id answers retry requests; the client
// asks status for the leader and sends to the leader's subject.
func RetrySubject(s transport.Subjects, id string) (string, error) {
	c, err := s.Coordinator()
	if err != nil {
		return "", err
	}
	if err := transport.ValidateToken(id); err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	return c + ".retry." + id, nil
}

// serveRetry answers retry requests on this replica's subject: the leader
// commits a RetryJob (failed → submitted); a follower names the leader.
func (n *Node) serveRetry() (func(), error) {
	subj, err := RetrySubject(n.cfg.Subj, n.cfg.ID)
	if err != nil {
		return nil, err
	}
	return transport.HandleJSON(n.cfg.Conn, subj, "", func(ctx context.Context, req RetryRequest) (RetryReply, error) {
		cmd, err := consensus.NewRetryJob(consensus.NewID(), req.Job, req.Reason)
		if err != nil {
			return RetryReply{}, err
		}
		if _, err := n.cfg.Raft.Apply(ctx, cmd); err != nil {
			var nl *consensus.NotLeaderError
			if errors.As(err, &nl) {
				return RetryReply{}, fmt.Errorf("replica %s is not the leader (%s): ask again", n.cfg.ID, nl.LeaderID)
			}
			return RetryReply{}, err
		}
		n.log.Info("job reopened by a user retry; resuming from the newest intact checkpoint", "job", req.Job, "reason", req.Reason)
		return RetryReply{Message: fmt.Sprintf("job %s reopened by %s; it resumes from its newest intact checkpoint", req.Job, n.cfg.ID)}, nil
	})
}
