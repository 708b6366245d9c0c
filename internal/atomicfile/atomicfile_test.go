package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.json")
	for _, data := range [][]byte{[]byte("first"), []byte("second, longer content"), {}} {
		if err := WriteFile(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q (%v), want %q", got, err, data)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v (%v), want 0640", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file (no temporaries)", len(ents))
	}
}

// TestWriteFileFailureLeavesTarget: a write that cannot complete (the
// target is a directory, so the rename fails) leaves the target as it was
// and removes its temporary file.
func TestWriteFileFailureLeavesTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("data"), 0o644); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "out" {
		t.Fatalf("directory holds %v, want only the untouched target", ents)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

func TestSyncTreeAndRemoveStale(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	for _, p := range []string{".prune.tmp-1/a", ".prune.tmp-2/b/c", ".other.tmp-1/x", "prune/keep"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := SyncTree(dir); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(dir, ".prune.tmp-")
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v (%v), want the two .prune.tmp-* directories", removed, err)
	}
	for _, p := range []string{".other.tmp-1/x", "prune/keep"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("%s was removed too: %v", p, err)
		}
	}
	if r, err := RemoveStale(out, ".x"); err != nil || r != nil {
		t.Fatalf("a missing directory: %v %v", r, err)
	}
}
