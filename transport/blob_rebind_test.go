package transport

import (
	"errors"
	"testing"
	"time"
)

// TestObjectBlobStoreBucketVanishes (issue 12 class 2): the bucket's
// stream disappears (a NATS server restarted without its store). Old
// blobs read as not found (recovery falls back past them) and new ones
// can be stored again: the store re-creates its bucket.
func TestObjectBlobStoreBucketVanishes(t *testing.T) {
	srv := startServer(t, ServerConfig{JetStream: true, StoreDir: t.TempDir()})
	c := connect(t, srv.ClientURL(), Options{})
	ctx := testCtx(t, 20*time.Second)
	s, err := NewObjectBlobStore(ctx, c, "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.Put(ctx, []byte("checkpoint of step 8"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.js.DeleteObjectStore(ctx, "ckpt"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a blob of the vanished bucket: %v, want ErrNotFound", err)
	}
	key, err := s.Put(ctx, []byte("checkpoint of step 4, replayed"))
	if err != nil {
		t.Fatalf("put after the bucket vanished: %v", err)
	}
	if b, err := s.Get(ctx, key); err != nil || string(b) != "checkpoint of step 4, replayed" {
		t.Fatalf("get after re-creation: %q, %v", b, err)
	}
}
