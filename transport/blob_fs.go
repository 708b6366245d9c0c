package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/unipruning/unipruning/internal/atomicfile"
)

// FSBlobStore stores blobs as files dir/<key[:2]>/<key>. Writes go to a
// temporary file that is fsynced and renamed into place (and the directory
// fsynced), so a crash leaves either the whole blob or none of it.
type FSBlobStore struct {
	dir string
}

var _ BlobStore = (*FSBlobStore)(nil)

// NewFSBlobStore opens (creating if needed) a blob store rooted at dir.
func NewFSBlobStore(dir string) (*FSBlobStore, error) {
	if dir == "" {
		return nil, errors.New("transport: NewFSBlobStore: empty directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("transport: blob store: %w", err)
	}
	return &FSBlobStore{dir: dir}, nil
}

// path is the file a (valid) key is, or would be, stored in.
func (s *FSBlobStore) path(key string) string {
	return filepath.Join(s.dir, key[:2], key)
}

func (s *FSBlobStore) Put(ctx context.Context, data []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key := BlobKey(data)
	path := s.path(key)
	if existing, err := os.ReadFile(path); err == nil && verifyBlob(key, existing, path) == nil {
		return key, nil // already stored intact
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("transport: blob put: %w", err)
	}
	// Mode 0600, as the blobs were always written (os.CreateTemp's mode).
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("transport: blob put %s: %w", key, err)
	}
	return key, nil
}

func (s *FSBlobStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.path(key)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (looked in %s)", ErrNotFound, key, path)
	}
	if err != nil {
		return nil, fmt.Errorf("transport: blob get: %w", err)
	}
	if err := verifyBlob(key, data, path); err != nil {
		return nil, err
	}
	return data, nil
}

func (s *FSBlobStore) Has(ctx context.Context, key string) (bool, error) {
	if err := validateKey(key); err != nil {
		return false, err
	}
	_, err := os.Stat(s.path(key))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("transport: blob has: %w", err)
}

func (s *FSBlobStore) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transport: blob delete: %w", err)
	}
	return nil
}
