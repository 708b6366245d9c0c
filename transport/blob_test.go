package transport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// blobStoreContract exercises the BlobStore interface on any implementation.
func blobStoreContract(t *testing.T, s BlobStore) {
	ctx := testCtx(t, 20*time.Second)
	data := bytes.Repeat([]byte("checkpoint "), 100000) // ~1.1 MB: several object chunks
	key, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if key != BlobKey(data) || len(key) != 64 {
		t.Fatalf("key %q", key)
	}
	if k2, err := s.Put(ctx, data); err != nil || k2 != key {
		t.Fatalf("second put: %q %v", k2, err)
	}
	got, err := s.Get(ctx, key)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if ok, err := s.Has(ctx, key); !ok || err != nil {
		t.Fatalf("has: %v %v", ok, err)
	}
	emptyKey, err := s.Put(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, emptyKey); err != nil || len(got) != 0 {
		t.Fatalf("empty blob: %v %v", got, err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Has(ctx, key); ok || err != nil {
		t.Fatalf("has after delete: %v %v", ok, err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("G", 64), strings.Repeat("A", 64), "../" + key[3:]} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Get(%q): %v", bad, err)
		}
	}
}

func TestFSBlobStore(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFSBlobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobStoreContract(t, s)

	// A file corrupted on disk is caught on read.
	ctx := context.Background()
	key, err := s.Put(ctx, []byte("gamma of layer 3"))
	if err != nil {
		t.Fatal(err)
	}
	path := s.path(key)
	if !strings.HasPrefix(path, dir+"/"+key[:2]+"/") {
		t.Fatalf("not sharded by key prefix: %s", path)
	}
	if err := os.WriteFile(path, []byte("gamma of layer 4"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, key)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("want ErrChecksum naming the file, got %v", err)
	}
	// Putting the same content again repairs the bad copy.
	if _, err := s.Put(ctx, []byte("gamma of layer 3")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key); err != nil {
		t.Fatalf("after repair: %v", err)
	}
	entries, _ := os.ReadDir(dir + "/" + key[:2])
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestObjectBlobStore(t *testing.T) {
	srv := startServer(t, ServerConfig{JetStream: true, StoreDir: t.TempDir()})
	c := connect(t, srv.ClientURL(), Options{})
	ctx := testCtx(t, 20*time.Second)
	s, err := NewObjectBlobStore(ctx, c, "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	blobStoreContract(t, s)

	// Binding to an existing bucket works and sees the same blobs.
	key, err := s.Put(ctx, []byte("z state"))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := NewObjectBlobStore(ctx, c, "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s2.Has(ctx, key); !ok {
		t.Fatal("second handle does not see the blob")
	}
	// An object whose content does not match its name is rejected.
	if _, err := s.store.PutBytes(ctx, key, []byte("tampered")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, key)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "bucket ckpt") {
		t.Fatalf("want ErrChecksum naming the bucket, got %v", err)
	}
	if _, err := NewObjectBlobStore(ctx, c, "bad.name"); err == nil {
		t.Fatal("invalid bucket accepted")
	}
}

func TestObjectBlobStoreNeedsJetStream(t *testing.T) {
	srv := startServer(t, ServerConfig{})
	c := connect(t, srv.ClientURL(), Options{})
	ctx := testCtx(t, 10*time.Second)
	if _, err := NewObjectBlobStore(ctx, c, "ckpt"); err == nil || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("want an error mentioning JetStream, got %v", err)
	}
}
