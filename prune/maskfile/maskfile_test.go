package maskfile

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/prune"
)

func TestRoundTripAndCorruption(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w, err := NewWriter(map[string]string{"method": "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*prune.Mask{}
	for i, sh := range [][2]int{{3, 5}, {64, 172}, {1, 1}, {17, 9}} {
		m := prune.NewMask(sh[0], sh[1])
		for a := 0; a < sh[0]; a++ {
			for b := 0; b < sh[1]; b++ {
				m.Set(a, b, r.IntN(2) == 0)
			}
		}
		name := "m" + string(rune('a'+i))
		want[name] = m
		if err := w.Add(name, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add("ma", want["ma"]); err == nil {
		t.Fatal("a duplicate name was accepted")
	}
	path := filepath.Join(t.TempDir(), "masks.safetensors")
	if err := w.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for n, m := range want {
		if !got[n].Equal(m) {
			t.Fatalf("mask %s changed in the round trip", n)
		}
	}
	b, _ := os.ReadFile(path)
	b[len(b)-3] ^= 0xff
	os.WriteFile(path, b, 0o644)
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("a corrupted mask file read without error: %v", err)
	}
}
