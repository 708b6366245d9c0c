package model

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteDirAtomicallyRemovesStaleTemps: the temporary directory of a
// writer killed before its rename (".prune.tmp-*" beside --out) is removed
// by the next write of the same output; other entries are left alone.
func TestWriteDirAtomicallyRemovesStaleTemps(t *testing.T) {
	parent := t.TempDir()
	stale := filepath.Join(parent, ".prune.tmp-123456")
	if err := os.MkdirAll(filepath.Join(stale, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, ".other.tmp-1")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(parent, "prune")
	err := WriteDirAtomically(out, false, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "report.json"), []byte("{}"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("another output's entry was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
		t.Fatal(err)
	}
}
