package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/shard"
)

// TestEmbeddedClusterMatchesInProcess: the one-process cluster (embedded
// NATS, single-node Raft, 2 shard servers) gives bitwise the Γ of the
// in-process driver.
func TestEmbeddedClusterMatchesInProcess(t *testing.T) {
	for _, mode := range []string{shard.ModeGlobal, shard.ModeFrozen} {
		spec := smallSpec(t, mode)
		ref := search(t, spec, 2)
		out := filepath.Join(t.TempDir(), "cluster")
		if err := runEmbeddedCluster(context.Background(), searchFlags{spec: spec, out: out, shards: 2}); err != nil {
			t.Fatal(err)
		}
		ga, fa := gammaValues(t, ref)
		gb, fb := gammaValues(t, out)
		if !sameBits(ga, gb) {
			t.Fatalf("%s: the embedded cluster's Γ differs from the in-process one", mode)
		}
		for i := range fa {
			if fa[i] != fb[i] {
				t.Fatalf("%s: first-steps differ", mode)
			}
		}
	}
}
