package consensus

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNodeRefusesOversizeBeforeProposing: an oversize registration never
// reaches the Raft log (the applied index does not move), and the number
// of distinct registrations is bounded — so 150 oversize registrations
// cannot grow the log (issue 12 class 6).
func TestNodeRefusesOversizeBeforeProposing(t *testing.T) {
	cfg := testConfig(t, "c1", freeAddr(t), nil)
	cfg.Bootstrap = true
	n := openNode(t, cfg)
	waitLeader(t, n)
	ctx := ctxFor(t, testWait)
	if err := n.Barrier(ctx); err != nil { // the leader's own first entries
		t.Fatal(err)
	}
	before := n.AppliedIndex()
	for i := range 150 {
		cmd, err := NewRegisterMember(NewID(), fmt.Sprintf("s%d", i), strings.Repeat("a", 1<<20), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Apply(ctx, cmd); !errors.Is(err, ErrInvalid) {
			t.Fatalf("oversize registration %d: %v", i, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	// A re-election on a loaded machine may add an entry or two of its
	// own; 150 proposals would add 150.
	if after := n.AppliedIndex(); after > before+4 || len(n.State().Members) != 0 {
		t.Fatalf("applied index moved from %d to %d, %d members: oversize commands were proposed", before, after, len(n.State().Members))
	}
}
