package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/transport"
)

// TestEmbeddedClusterMatchesInProcess: the one-process cluster (embedded
// NATS, single-node Raft, 2 shard servers) gives bitwise the Γ of the
// in-process driver.
func TestEmbeddedClusterMatchesInProcess(t *testing.T) {
	for _, mode := range []string{job.ModeGlobal, job.ModeFrozen} {
		spec := smallSpec(t, mode)
		ref := search(t, spec, 2)
		out := filepath.Join(t.TempDir(), "cluster")
		if err := runEmbeddedCluster(context.Background(), searchFlags{spec: spec, out: out, shards: 2}); err != nil {
			t.Fatal(err)
		}
		requireSameGamma(t, ref, out, mode+": embedded cluster against in-process")
	}
}

// TestFetchGamma: the finished job's Γ store can be rebuilt from the blob
// store alone (the manifest blob the leader records, and the parts by
// their sha256).
func TestFetchGamma(t *testing.T) {
	spec := smallSpec(t, job.ModeFrozen)
	out := filepath.Join(t.TempDir(), "cluster")
	if err := runEmbeddedCluster(context.Background(), searchFlags{spec: spec, out: out, shards: 2}); err != nil {
		t.Fatal(err)
	}
	blobs, err := transport.NewFSBlobStore(filepath.Join(out, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(filepath.Join(out, gammastore.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fetched")
	os.MkdirAll(dir, 0o755)
	if err := gammastore.Fetch(context.Background(), blobs, transport.BlobKey(man), dir); err != nil {
		t.Fatal(err)
	}
	requireSameGamma(t, out, dir, "fetched Γ store")
}
