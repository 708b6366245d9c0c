package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Standard file names of a Hugging Face model directory.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// maxIndexSize bounds how much of an index file is read; real indexes are
// a few hundred kilobytes.
const maxIndexSize = MaxHeaderSize

// Set is the tensors of a model: one file or the shards of an index.
// Methods are safe for concurrent use until Close.
type Set struct {
	files     []string         // shard names as in the index, sorted
	open      map[string]*File // by shard name
	tensors   []TensorInfo     // sorted by name
	byName    map[string]int
	owner     []*File // owner[i] holds tensors[i]
	indexMeta map[string]any
}

// OpenSet opens a model. path is a directory holding IndexFileName (a
// sharded model, preferred when present) or SingleFileName, the index file
// itself, or one .safetensors file.
func OpenSet(path string) (*Set, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.IsDir() {
		if strings.HasSuffix(path, ".json") {
			return openIndex(path)
		}
		return openSingle(path)
	}
	if idx := filepath.Join(path, IndexFileName); exists(idx) {
		return openIndex(idx)
	}
	if single := filepath.Join(path, SingleFileName); exists(single) {
		return openSingle(single)
	}
	return nil, fmt.Errorf("safetensors: %s: directory has neither %s nor %s", path, IndexFileName, SingleFileName)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func openSingle(path string) (*Set, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(path)
	s := &Set{files: []string{name}, open: map[string]*File{name: f}}
	for _, t := range f.tensors {
		s.tensors = append(s.tensors, t)
		s.owner = append(s.owner, f)
	}
	s.index()
	return s, nil
}

// openIndex opens every shard the index names and checks that each listed
// tensor is really in its shard. Tensors a shard holds but the index does
// not list are left out, as transformers ignores them too.
func openIndex(path string) (*Set, error) {
	weightMap, meta, err := readIndex(path)
	if err != nil {
		return nil, err
	}
	s := &Set{open: make(map[string]*File), indexMeta: meta}
	s.files = slices.Sorted(maps.Values(weightMap))
	s.files = slices.Compact(s.files)
	dir := filepath.Dir(path)
	for _, name := range s.files {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: shard name %q is not a path inside the model directory", path, name)
		}
		f, err := Open(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: shard %q listed in the index: %w", path, name, err)
		}
		s.open[name] = f
	}
	if err := s.collect(weightMap, path); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// collect gathers the tensors of weightMap from the open shards.
func (s *Set) collect(weightMap map[string]string, indexPath string) error {
	for _, name := range slices.Sorted(maps.Keys(weightMap)) {
		f := s.open[weightMap[name]]
		i, ok := f.byName[name]
		if !ok {
			return fmt.Errorf("safetensors: %s: tensor %q is listed in the index for shard %q but absent from %s",
				indexPath, name, weightMap[name], f.path)
		}
		s.tensors = append(s.tensors, f.tensors[i])
		s.owner = append(s.owner, f)
	}
	s.index()
	return nil
}

// index sorts the tensors by name and builds the name lookup.
func (s *Set) index() {
	order := make([]int, len(s.tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(s.tensors[a].Name, s.tensors[b].Name) })
	ts, ow := make([]TensorInfo, len(order)), make([]*File, len(order))
	s.byName = make(map[string]int, len(order))
	for i, j := range order {
		ts[i], ow[i] = s.tensors[j], s.owner[j]
		s.byName[ts[i].Name] = i
	}
	s.tensors, s.owner = ts, ow
}

// readIndex parses an index file: {"metadata": {...}, "weight_map":
// {tensor: shard}}. Duplicate tensor names are an error, not last-wins.
func readIndex(path string) (map[string]string, map[string]any, error) {
	raw, err := readLimited(path, maxIndexSize)
	if err != nil {
		return nil, nil, err
	}
	bad := func(err error) error { return fmt.Errorf("safetensors: %s: bad index: %w", path, jsonError(err)) }
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // total_size and friends stay exact integers
	var weightMap map[string]string
	var meta map[string]any
	err = expectObject(dec, "index", func(key string) error {
		switch key {
		case "weight_map":
			weightMap = make(map[string]string)
			return expectObject(dec, "weight_map", func(name string) error {
				return decodeString(dec, weightMap, name)
			})
		case "metadata":
			return dec.Decode(&meta)
		}
		var skip json.RawMessage
		return dec.Decode(&skip)
	})
	if err != nil {
		return nil, nil, bad(err)
	}
	if weightMap == nil {
		return nil, nil, bad(errors.New("no weight_map"))
	}
	return weightMap, meta, nil
}

func decodeString(dec *json.Decoder, m map[string]string, key string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	v, ok := tok.(string)
	if !ok {
		return fmt.Errorf("weight_map value of %q is %s, not a file name", key, tokenKind(tok))
	}
	m[key] = v
	return nil
}

// readLimited reads a whole small file, refusing ones larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("safetensors: %s: larger than %d bytes", path, limit)
	}
	return raw, nil
}

// Tensors returns all tensors, sorted by name (a copy).
func (s *Set) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(s.tensors))
	for i, t := range s.tensors {
		out[i] = t.clone()
	}
	return out
}

// Info returns the tensor called name.
func (s *Set) Info(name string) (TensorInfo, bool) {
	i, ok := s.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return s.tensors[i].clone(), true
}

// Files returns the shard file names as written in the index, in sorted
// order, which for the standard "model-00001-of-0000N" names is shard
// order; for a single file, its base name.
func (s *Set) Files() []string { return slices.Clone(s.files) }

// File returns the open shard called name (as listed by Files). It stays
// owned by the Set: do not close it.
func (s *Set) File(name string) (*File, bool) {
	f, ok := s.open[name]
	return f, ok
}

// IndexMetadata returns the index's "metadata" object (numbers as
// json.Number), or nil for a single file.
func (s *Set) IndexMetadata() map[string]any { return maps.Clone(s.indexMeta) }

// TotalSize returns the index's metadata.total_size, if present.
func (s *Set) TotalSize() (int64, bool) {
	n, ok := s.indexMeta["total_size"].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

func (s *Set) owning(name string) (*File, error) {
	i, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: model has no tensor %q", name)
	}
	return s.owner[i], nil
}

// ReadRaw returns the tensor's bytes exactly as stored.
func (s *Set) ReadRaw(name string) ([]byte, error) {
	f, err := s.owning(name)
	if err != nil {
		return nil, err
	}
	return f.ReadRaw(name)
}

// ReadFloat32 returns the tensor converted to float32 (see File.ReadFloat32).
func (s *Set) ReadFloat32(name string) ([]float32, error) {
	f, err := s.owning(name)
	if err != nil {
		return nil, err
	}
	return f.ReadFloat32(name)
}

// ReadFloat32Into converts the tensor into dst (see File.ReadFloat32Into).
func (s *Set) ReadFloat32Into(name string, dst []float32) error {
	f, err := s.owning(name)
	if err != nil {
		return err
	}
	return f.ReadFloat32Into(name, dst)
}

// Close closes every shard.
func (s *Set) Close() error {
	var errs []error
	for _, name := range s.files {
		if f := s.open[name]; f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}
