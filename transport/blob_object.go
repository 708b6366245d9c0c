package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ObjectBlobStore stores blobs in a JetStream Object Store bucket, named by
// key. It needs a server with JetStream enabled.
type ObjectBlobStore struct {
	bucket string
	js     jetstream.JetStream
	cfg    jetstream.ObjectStoreConfig
	mu     sync.Mutex
	store  jetstream.ObjectStore
}

var _ BlobStore = (*ObjectBlobStore)(nil)

// NewObjectBlobStore binds to the Object Store bucket, creating it (file
// storage, one replica) if it does not exist.
func NewObjectBlobStore(ctx context.Context, conn *Conn, bucket string) (*ObjectBlobStore, error) {
	return NewObjectBlobStoreReplicas(ctx, conn, bucket, 1)
}

// NewObjectBlobStoreReplicas is NewObjectBlobStore creating the bucket (if
// absent) with the given replica count: 3 on a 3-server JetStream cluster
// keeps checkpoints through the loss of a server.
func NewObjectBlobStoreReplicas(ctx context.Context, conn *Conn, bucket string, replicas int) (*ObjectBlobStore, error) {
	if err := ValidateToken(bucket); err != nil {
		return nil, fmt.Errorf("transport: object store bucket: %w", err)
	}
	js, err := jetstream.New(conn.nc)
	if err != nil {
		return nil, fmt.Errorf("transport: jetstream: %w", err)
	}
	s := &ObjectBlobStore{bucket: bucket, js: js, cfg: jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "unipruning checkpoint blobs (content-addressed by sha256)",
		Storage:     jetstream.FileStorage,
		Replicas:    max(1, replicas),
	}}
	if s.store, err = s.bind(ctx); err != nil {
		return nil, fmt.Errorf("transport: object store bucket %s (is JetStream enabled on the server?): %w", bucket, err)
	}
	return s, nil
}

// bind opens the bucket, creating it if it does not exist.
func (s *ObjectBlobStore) bind(ctx context.Context) (jetstream.ObjectStore, error) {
	store, err := s.js.ObjectStore(ctx, s.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		store, err = s.js.CreateObjectStore(ctx, s.cfg)
		if errors.Is(err, jetstream.ErrBucketExists) { // another process won the race
			store, err = s.js.ObjectStore(ctx, s.bucket)
		}
	}
	return store, err
}

func (s *ObjectBlobStore) current() jetstream.ObjectStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store
}

// rebind re-creates a bucket that vanished (a NATS server restarted
// without its store): new checkpoints can be written again, while the
// lost ones stay lost (recovery falls back past them).
func (s *ObjectBlobStore) rebind(ctx context.Context) error {
	store, err := s.bind(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.store = store
	s.mu.Unlock()
	return nil
}

// gone reports errors that mean the bucket's stream no longer exists.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

func (s *ObjectBlobStore) where() string { return "object store bucket " + s.bucket }

func (s *ObjectBlobStore) Put(ctx context.Context, data []byte) (string, error) {
	key := BlobKey(data)
	if ok, err := s.Has(ctx, key); err == nil && ok {
		return key, nil
	}
	_, err := s.current().PutBytes(ctx, key, data)
	if err != nil && gone(err) && s.rebind(ctx) == nil {
		_, err = s.current().PutBytes(ctx, key, data)
	}
	if err != nil {
		return "", fmt.Errorf("transport: blob put %s into %s: %w", key, s.where(), err)
	}
	return key, nil
}

func (s *ObjectBlobStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	data, err := s.current().GetBytes(ctx, key)
	if err != nil && gone(err) && s.rebind(ctx) == nil {
		data, err = s.current().GetBytes(ctx, key) // a re-created bucket is empty
	}
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, key, s.where())
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return nil, fmt.Errorf("%w: blob %s in %s: object digest mismatch: stored copy is corrupt",
			ErrChecksum, key, s.where())
	case err != nil:
		return nil, fmt.Errorf("transport: blob get %s from %s: %w", key, s.where(), err)
	}
	if err := verifyBlob(key, data, s.where()); err != nil {
		return nil, err
	}
	return data, nil
}

func (s *ObjectBlobStore) Has(ctx context.Context, key string) (bool, error) {
	if err := validateKey(key); err != nil {
		return false, err
	}
	_, err := s.current().GetInfo(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return false, nil
	}
	return false, fmt.Errorf("transport: blob has %s in %s: %w", key, s.where(), err)
}

func (s *ObjectBlobStore) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := s.current().Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("transport: blob delete %s from %s: %w", key, s.where(), err)
	}
	return nil
}
