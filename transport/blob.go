package transport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// BlobStore keeps checkpoint blobs by content: a blob's key is the hex
// SHA-256 of its bytes, so a key in a Raft manifest pins the exact content
// and every read is verified against it.
type BlobStore interface {
	// Put stores data and returns its key. Storing existing content again
	// is cheap and harmless.
	Put(ctx context.Context, data []byte) (key string, err error)
	// Get returns the blob; ErrNotFound if absent, ErrChecksum if the stored
	// bytes no longer hash to key.
	Get(ctx context.Context, key string) ([]byte, error)
	// Has reports whether a blob with this key is stored (without verifying it).
	Has(ctx context.Context, key string) (bool, error)
	// Delete removes the blob; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
}

var (
	// ErrNotFound means no blob with the key is stored.
	ErrNotFound = errors.New("transport: blob not found")
	// ErrChecksum means a stored blob's content does not match its key.
	ErrChecksum = errors.New("transport: blob checksum mismatch")
	// ErrInvalidKey means the key is not 64 lowercase hex digits.
	ErrInvalidKey = errors.New("transport: invalid blob key")
)

// BlobKey returns the key of data: its SHA-256 in lowercase hex.
func BlobKey(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func validateKey(key string) error {
	if len(key) != 64 {
		return fmt.Errorf("%w %q: want 64 hex digits (sha256), got %d characters", ErrInvalidKey, key, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w %q: character %q is not lowercase hex", ErrInvalidKey, key, c)
		}
	}
	return nil
}

// verifyBlob checks data against key; where names the copy (file, bucket)
// so the error says which copy is bad.
func verifyBlob(key string, data []byte, where string) error {
	if got := BlobKey(data); got != key {
		return fmt.Errorf("%w: blob %s in %s has sha256 %s (%d bytes): stored copy is corrupt",
			ErrChecksum, key, where, got, len(data))
	}
	return nil
}
