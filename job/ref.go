package job

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Ref names a stored image (checkpoint or Γ part) in a blob store and its
// checksum.
type Ref struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// RefOf describes img stored under key.
func RefOf(key string, img []byte) Ref {
	return Ref{Key: key, SHA256: SHA256(img), Bytes: int64(len(img))}
}

// SHA256 is the hex sha256 of b (the key of a content-addressed blob).
func SHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Check verifies that img is the image r names (an empty SHA256 is not
// checked): a blob store need not verify what it returns.
func (r Ref) Check(img []byte) error {
	if r.SHA256 == "" {
		return nil
	}
	if got := SHA256(img); got != r.SHA256 {
		return fmt.Errorf("image %s has sha256 %s (%d bytes), its reference says %s (%d bytes): checksum mismatch, the stored copy is corrupt",
			r.Key, got, len(img), r.SHA256, r.Bytes)
	}
	return nil
}
