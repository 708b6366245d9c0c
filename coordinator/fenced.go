package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/shardrpc"
)

// maxEpochJump bounds how far above Raft's epoch the leader moves to get
// past a shard's fence; a fence beyond it is not worth chasing.
const maxEpochJump = math.MaxUint32

// epochProber is implemented by clients that can ask a shard its epoch
// (shardrpc.Remote); in-process shards are never fenced from outside.
type epochProber interface {
	Status(ctx context.Context) (shardrpc.Status, error)
}

// unfence handles a shard's stale-epoch refusal (issue 12 class 5). When
// Raft holds a newer epoch or another leader, it is real fencing: the
// error goes on to step down. Otherwise the fence came from outside Raft
// (a forged or lost assign raised a shard's epoch) and this leader would
// stall if it stepped down while still leading: it learns the shards'
// epochs and recovers under a higher one. A fence it cannot get past
// makes it give up leadership, and if no other replica can take over,
// the failure is permanent.
func (n *Node) unfence(ctx context.Context, err error) error {
	if !errors.Is(err, shardrpc.ErrStaleEpoch) {
		return err
	}
	st := n.cfg.Raft.State()
	n.mu.Lock()
	remotes := n.remotes
	n.mu.Unlock()
	if !n.cfg.Raft.IsLeader() || len(remotes) == 0 {
		return err // deposed: classify steps down
	}
	highest := st.Assignment.Epoch
	for _, r := range remotes {
		p, ok := r.(epochProber)
		if !ok {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, perr := p.Status(pctx)
		cancel()
		if perr == nil {
			highest = max(highest, s.Epoch)
		}
	}
	if highest <= st.Assignment.Epoch {
		return err // fenced by Raft's own epoch: a newer leader is moving in
	}
	if highest-st.Assignment.Epoch > maxEpochJump {
		n.log.Error("a shard is fenced at an epoch far beyond Raft's; giving up leadership",
			"shard_epoch", highest, "raft_epoch", st.Assignment.Epoch)
		if terr := n.cfg.Raft.TransferLeadership(); terr == nil {
			return err
		}
		return fmt.Errorf("shard fenced at epoch %d, Raft's is %d, and no other replica can lead: %w",
			highest, st.Assignment.Epoch, errPermanentFence)
	}
	n.log.Warn("a shard is fenced above Raft's epoch (forged or lost assign); recovering under a higher epoch",
		"shard_epoch", highest, "raft_epoch", st.Assignment.Epoch)
	n.epochFloor = highest
	return fmt.Errorf("shard fenced at epoch %d above Raft's %d: reassigning above it", highest, st.Assignment.Epoch)
}

var errPermanentFence = job.MarkPermanent(errors.New("fence beyond recovery"))
