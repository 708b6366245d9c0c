package gammastore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune/statefile"
)

// memBlobs is a content-addressed in-memory blob store that counts calls.
type memBlobs struct {
	mu       sync.Mutex
	m        map[string][]byte
	puts     int
	gets     int
	corrupts map[string]bool // keys returned with a flipped byte
}

func newMemBlobs() *memBlobs { return &memBlobs{m: map[string][]byte{}, corrupts: map[string]bool{}} }

func (b *memBlobs) Put(ctx context.Context, data []byte) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts++
	k := job.SHA256(data)
	b.m[k] = slices.Clone(data)
	return k, nil
}

func (b *memBlobs) Get(ctx context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gets++
	v, ok := b.m[key]
	if !ok {
		return nil, errors.New("no such blob " + key)
	}
	v = slices.Clone(v)
	if b.corrupts[key] {
		v[len(v)/2] ^= 1
	}
	return v, nil
}

// part makes a Γ part image of two 2×3 targets of layer l, as a shard's
// GammaPart does, and stores it.
func part(t *testing.T, b *memBlobs, l int) PartRef {
	t.Helper()
	var ts []statefile.Tensor
	for m := model.Matrix(0); m < 2; m++ {
		n := model.Target{Layer: l, Matrix: m}.TensorName()
		g := []float32{float32(l), 0, -1.5, 2, float32(m), 0.25}
		ts = append(ts,
			statefile.Tensor{Name: n + "/gamma", Shape: []int{2, 3}, F32: g},
			statefile.Tensor{Name: n + "/first", Shape: []int{2, 3}, I32: []int32{1, -1, 3, 4, int32(l), 6}})
	}
	img, err := statefile.Encode(ts, map[string]string{"kind": "gamma"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := b.Put(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	return PartRef{Ref: job.RefOf(key, img), Layers: [2]int{l, l + 1}}
}

func testManifest() *Manifest {
	loss := 2.5
	return &Manifest{SpecHash: "abc", Steps: []StepRecord{{Step: 1, StepFacts: job.StepFacts{LR: 0.1, Loss: &loss}}}}
}

// TestAssembleOpen: the parts land in the store under their layer names,
// the manifest lists them with their sha256, and Open reads back every Γ
// and first-step value; Assemble puts nothing into the blob store.
func TestAssembleOpen(t *testing.T) {
	ctx := context.Background()
	b := newMemBlobs()
	parts := []PartRef{part(t, b, 0), part(t, b, 1)}
	puts := b.puts
	dir := t.TempDir()
	raw, err := Assemble(ctx, b, dir, testManifest(), parts)
	if err != nil {
		t.Fatal(err)
	}
	if b.puts != puts || b.gets != len(parts) {
		t.Fatalf("Assemble made %d puts and %d gets, want 0 and %d", b.puts-puts, b.gets, len(parts))
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil || string(onDisk) != string(raw) {
		t.Fatalf("the returned manifest is not the one written (%v)", err)
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != Format || len(st.Parts) != 2 || st.Parts[1].File != "gamma/part-L001-L002.state" || st.Parts[1].From != 1 {
		t.Fatalf("manifest parts %+v", st.Parts)
	}
	if st.Parts[0].SHA256 != parts[0].Ref.SHA256 {
		t.Fatalf("part 0 sha256 %s, its reference says %s", st.Parts[0].SHA256, parts[0].Ref.SHA256)
	}
	n := model.Target{Layer: 1, Matrix: 1}.TensorName()
	if g := st.Gamma[n]; !slices.Equal(g, []float32{1, 0, -1.5, 2, 1, 0.25}) {
		t.Fatalf("Γ of %s: %v", n, g)
	}
	if f := st.First[n]; !slices.Equal(f, []int32{1, -1, 3, 4, 1, 6}) {
		t.Fatalf("first-step of %s: %v", n, f)
	}
	if len(st.Steps) != 1 || st.Steps[0].Loss == nil || *st.Steps[0].Loss != 2.5 {
		t.Fatalf("steps %+v", st.Steps)
	}
}

// TestPublishFetch: Publish stores the manifest bytes it wrote (so its key
// is their sha256), and Fetch rebuilds an identical store from the blob
// store alone.
func TestPublishFetch(t *testing.T) {
	ctx := context.Background()
	b := newMemBlobs()
	parts := []PartRef{part(t, b, 0), part(t, b, 1), part(t, b, 2)}
	dir := t.TempDir()
	key, err := Publish(ctx, b, dir, testManifest(), parts)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	if key != job.SHA256(onDisk) {
		t.Fatal("the published manifest is not the file in the store")
	}
	out := filepath.Join(t.TempDir(), "fetched")
	if err := Fetch(ctx, b, key, out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ManifestName, "gamma/part-L000-L001.state", "gamma/part-L002-L003.state"} {
		want, _ := os.ReadFile(filepath.Join(dir, f))
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || string(got) != string(want) {
			t.Fatalf("%s differs after fetching (%v)", f, err)
		}
	}
}

// TestCorruption: a part the blob store returns corrupted is refused by
// Assemble and Fetch; a part file damaged on disk is refused by Open; a
// manifest naming a file outside the store is refused by Fetch.
func TestCorruption(t *testing.T) {
	ctx := context.Background()
	b := newMemBlobs()
	parts := []PartRef{part(t, b, 0), part(t, b, 1)}
	dir := t.TempDir()
	key, err := Publish(ctx, b, dir, testManifest(), parts)
	if err != nil {
		t.Fatal(err)
	}

	b.corrupts[parts[1].Ref.Key] = true
	if _, err := Assemble(ctx, b, t.TempDir(), testManifest(), parts); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Assemble of a corrupted part: %v", err)
	}
	if err := Fetch(ctx, b, key, t.TempDir()); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Fetch of a corrupted part: %v", err)
	}
	b.corrupts[parts[1].Ref.Key] = false

	file := filepath.Join(dir, "gamma/part-L001-L002.state")
	img, _ := os.ReadFile(file)
	os.WriteFile(file, img[:len(img)-1], 0o644)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Open of a truncated part: %v", err)
	}

	evil := []byte(`{"format":"` + Format + `","parts":[{"file":"../escape","sha256":"` + parts[0].Ref.SHA256 + `"}]}`)
	k, _ := b.Put(ctx, evil)
	if err := Fetch(ctx, b, k, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a path inside") {
		t.Fatalf("Fetch of a manifest with an escaping path: %v", err)
	}
}

// TestModelIdentity: a manifest made on stories260K accepts that model
// and refuses the same weights in HF layout (q/k rows permuted), and a
// store missing a target is refused.
func TestModelIdentity(t *testing.T) {
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	hf := shareddata.Path(t, "models/stories260K-hf")
	ck, err := model.Open(bin, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	spec := job.Spec{Model: bin, Tokenizer: tok, Steps: 2}
	lr := job.StepFacts{LR: 0.5}
	m, err := NewManifest(spec, ck, map[int]job.StepFacts{2: lr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.SpecHash != spec.Hash() || len(m.Steps) != 2 || m.Steps[0].Step != 1 || m.Steps[1].LR != 0.5 || m.Model.Fingerprint == "" {
		t.Fatalf("manifest %+v", m)
	}
	s := &Store{Manifest: *m, Dir: "run", Gamma: map[string][]float32{}}
	for _, tg := range model.Targets(ck.Config) {
		out, in := tg.Matrix.Shape(ck.Config)
		s.Gamma[tg.TensorName()] = make([]float32, out*in)
	}
	if err := s.CheckModel(ck); err != nil {
		t.Fatalf("the searched model was refused: %v", err)
	}
	other, err := model.Open(hf, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := s.CheckModel(other); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("the HF layout of the model was accepted: %v", err)
	}
	delete(s.Gamma, model.Targets(ck.Config)[3].TensorName())
	if err := s.CheckModel(ck); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Fatalf("a store missing a target was accepted: %v", err)
	}
}
