package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// Spill is an append-only temporary file of float32 tensors, so pruned
// matrices can be produced one layer at a time and written into the final
// checkpoint later without holding the whole model in memory.
type Spill struct {
	f    *os.File
	off  int64
	idx  map[string][2]int64 // name → offset, element count
	path string
}

// NewSpill creates a spill file at path (removed by Close).
func NewSpill(path string) (*Spill, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &Spill{f: f, idx: map[string][2]int64{}, path: path}, nil
}

// Put stores a tensor (replacing an earlier one of the same name).
func (s *Spill) Put(name string, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if _, err := s.f.WriteAt(b, s.off); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.idx[name] = [2]int64{s.off, int64(len(v))}
	s.off += int64(len(b))
	return nil
}

// Has reports whether a tensor was stored.
func (s *Spill) Has(name string) bool { _, ok := s.idx[name]; return ok }

// Get reads a stored tensor into dst (lengths must match).
func (s *Spill) Get(name string, dst []float32) error {
	e, ok := s.idx[name]
	if !ok {
		return fmt.Errorf("spill: no tensor %s", name)
	}
	if e[1] != int64(len(dst)) {
		return fmt.Errorf("spill: %s has %d values, destination %d", name, e[1], len(dst))
	}
	b := make([]byte, 4*len(dst))
	if _, err := s.f.ReadAt(b, e[0]); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// Close closes and deletes the spill file.
func (s *Spill) Close() error {
	s.f.Close()
	return os.Remove(s.path)
}
