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
	if after := n.AppliedIndex(); after != before {
		t.Fatalf("applied index moved from %d to %d: oversize commands were proposed", before, after)
	}
}
