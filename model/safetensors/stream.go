package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
)

// StreamWriter writes a safetensors file whose tensors are known one at a
// time, with sizes that depend on their data (compressed tensors: the number
// of kept values is only known once a tensor is read). The header's space is
// reserved up front from an upper bound; tensors are written as they come;
// Close writes the header into the reserved space, followed by the spaces the
// format allows as padding. So no tensor is held or read twice.
type StreamWriter struct {
	path, tmp string
	f         *os.File
	w         *bufio.Writer
	reserve   int
	l         layout
	seen      map[string]struct{}
	off       int64
}

// entryBound bounds the header bytes of one entry beyond its name: quotes,
// colon and comma, the field names, a dtype of ≤ 11 characters, and ≤ 4
// dimensions and 2 offsets of ≤ 20 digits each.
const entryBound = 64 + 11 + 6*21

// HeaderBound is the largest header that tensors named names (each written
// at most once, with at most 4 dimensions) and metadata can need.
func HeaderBound(names []string, metadata map[string]string) int {
	n := 64
	for _, s := range names {
		n += 2*len(s) + entryBound // a name may need escaping
	}
	for k, v := range metadata {
		n += 2*(len(k)+len(v)) + 8
	}
	return n
}

// CreateStream starts path+".tmp" with headerBound bytes reserved for the
// header (see HeaderBound); Close renames it to path.
func CreateStream(path string, headerBound int) (*StreamWriter, error) {
	reserve := (headerBound + 7) &^ 7 // keeps the data section 8-byte aligned
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if _, err := f.Seek(int64(8+reserve), 0); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return &StreamWriter{path: path, tmp: tmp, f: f, w: bufio.NewWriterSize(f, 1<<20), reserve: reserve,
		seen: map[string]struct{}{}}, nil
}

// Add appends one tensor; data must be exactly the size its spec implies.
func (s *StreamWriter) Add(spec WriteSpec, data []byte) error {
	if err := checkSpec(spec, s.seen); err != nil {
		return fmt.Errorf("safetensors: %s: %w", s.path, err)
	}
	size, err := byteSize(spec.DType, spec.Shape)
	if err != nil {
		return fmt.Errorf("safetensors: %s: tensor %q: %w", s.path, spec.Name, err)
	}
	if int64(len(data)) != size {
		return fmt.Errorf("safetensors: %s: tensor %q: %d bytes given, shape %v of %s needs %d", s.path, spec.Name, len(data), spec.Shape, spec.DType, size)
	}
	if _, err := s.w.Write(data); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", s.path, err)
	}
	s.l.specs = append(s.l.specs, spec)
	s.l.begin = append(s.l.begin, s.off)
	s.l.size = append(s.l.size, size)
	s.off += size
	return nil
}

// Size is the number of data bytes added so far.
func (s *StreamWriter) Size() int64 { return s.off }

// Close writes the header, syncs the file and renames it into place.
func (s *StreamWriter) Close(metadata map[string]string) (err error) {
	defer func() {
		if err != nil {
			s.Abort()
			err = fmt.Errorf("safetensors: writing %s: %w", s.path, err)
		}
	}()
	if err = s.w.Flush(); err != nil {
		return err
	}
	hdr := s.l.headerBytes(metadata)
	if len(hdr) > s.reserve {
		return fmt.Errorf("header of %d bytes exceeds the %d reserved (HeaderBound too small)", len(hdr), s.reserve)
	}
	hdr = append(hdr, bytes.Repeat([]byte{' '}, s.reserve-len(hdr))...)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(hdr)))
	if _, err = s.f.WriteAt(prefix[:], 0); err != nil {
		return err
	}
	if _, err = s.f.WriteAt(hdr, 8); err != nil {
		return err
	}
	if err = s.f.Sync(); err != nil {
		return err
	}
	if err = s.f.Close(); err != nil {
		return err
	}
	return os.Rename(s.tmp, s.path)
}

// Abort discards the file.
func (s *StreamWriter) Abort() {
	s.f.Close()
	os.Remove(s.tmp)
}
