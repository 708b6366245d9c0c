package transport

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// testRoster makes a coordinator, shards s0 and s1 and a client identity;
// seeds maps each identity's Name to its seed file.
func testRoster(t testing.TB, cluster string) (*Roster, map[string]string) {
	t.Helper()
	r := &Roster{Cluster: cluster}
	seeds := map[string]string{}
	dir := t.TempDir()
	for _, id := range []Identity{{Role: RoleCoordinator}, {Role: RoleShard, ID: "s0"}, {Role: RoleShard, ID: "s1"}, {Role: RoleClient}} {
		pub, seed, err := GenerateNKeyUser()
		if err != nil {
			t.Fatal(err)
		}
		id.NKey = pub
		r.Identities = append(r.Identities, id)
		f := filepath.Join(dir, id.Name()+".nk")
		if err := os.WriteFile(f, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		seeds[id.Name()] = f
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r, seeds
}

func TestRosterValidate(t *testing.T) {
	r, _ := testRoster(t, "c")
	bad := []func(r *Roster){
		func(r *Roster) { r.Identities[1].ID = "s0.x" },
		func(r *Roster) { r.Identities[2].ID = "s0" },
		func(r *Roster) { r.Identities[3].NKey = r.Identities[0].NKey },
		func(r *Roster) { r.Identities[0].Role = "admin" },
		func(r *Roster) { r.Identities[0].ID = "c1" },
		func(r *Roster) { r.Identities[1].NKey = "not-a-key" },
		func(r *Roster) { r.Identities = r.Identities[1:] },
		func(r *Roster) { r.Cluster = "a.b" },
	}
	for i, mutate := range bad {
		c := *r
		c.Identities = append([]Identity(nil), r.Identities...)
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: invalid roster accepted: %+v", i, c)
		}
	}
}

// TestRosterPermissions checks DESIGN §5.1 on a real server: no
// credentials, no connection; a shard can neither call another shard's
// control subject nor the coordinator's status, nor read another shard's
// control calls, nor beat for another shard; requests are verified by
// signature; the client reads the bucket but cannot write it.
func TestRosterPermissions(t *testing.T) {
	r, seeds := testRoster(t, "auth")
	srv := startServer(t, ServerConfig{Roster: r, JetStream: true, StoreDir: t.TempDir()})
	dial := func(name string, roster *Roster) *Conn {
		return connect(t, srv.ClientURL(), Options{Name: name, NKeySeedFile: seeds[name], Roster: roster})
	}
	if _, err := Connect(Options{URL: srv.ClientURL(), Logger: quietLogger()}); !errors.Is(err, ErrAuth) {
		t.Fatalf("a client without credentials: err %v, want ErrAuth", err)
	}
	coord, s0, s1, client := dial("coordinator", r), dial("shard-s0", r), dial("shard-s1", r), dial("client", r)
	subj := r.Subjects()
	ctl1, _ := subj.Control("s1")
	status, _ := subj.Coordinator()
	status += ".status"

	var calls atomic.Int32
	var caller atomic.Value
	stop, err := s1.Handle(ctl1, "", func(ctx context.Context, req []byte) ([]byte, error) {
		calls.Add(1)
		id, _ := Caller(ctx)
		caller.Store(id)
		if err := RequireRole(ctx, RoleCoordinator); err != nil {
			return nil, err
		}
		return []byte("ok"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	stopStatus, err := coord.Handle(status, "", func(ctx context.Context, req []byte) ([]byte, error) { return []byte("st"), nil })
	if err != nil {
		t.Fatal(err)
	}
	defer stopStatus()
	// A shard that subscribes to another shard's control subject gets nothing.
	var snooped atomic.Int32
	if stopSnoop, err := s0.Subscribe(ctl1, func(string, []byte) { snooped.Add(1) }); err == nil {
		defer stopSnoop()
	}

	ctx := context.Background()
	short := CallOptions{Timeout: 300 * time.Millisecond}
	if out, err := coord.Call(ctx, ctl1, []byte("x"), short); err != nil || string(out) != "ok" {
		t.Fatalf("coordinator → shard s1: %q, %v", out, err)
	}
	if id := caller.Load().(Identity); id.Role != RoleCoordinator {
		t.Errorf("handler saw caller %+v", id)
	}
	for name, c := range map[string]*Conn{"shard-s0": s0, "client": client} {
		if _, err := c.Call(ctx, ctl1, []byte("forged"), short); err == nil {
			t.Errorf("%s published a control call to shard s1", name)
		}
	}
	if _, err := s0.Call(ctx, status, []byte("?"), short); err == nil {
		t.Errorf("shard s0 called the coordinator's status subject")
	}
	if out, err := client.Call(ctx, status, []byte("?"), short); err != nil || string(out) != "st" {
		t.Errorf("client status: %q, %v", out, err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("shard s1's handler ran %d times, want only the coordinator's call", n)
	}
	if n := snooped.Load(); n != 0 {
		t.Errorf("shard s0 read %d of shard s1's control calls", n)
	}

	// Requests that are unsigned, or signed with another key than the one
	// they claim, are refused by the handler itself.
	unsigned := dial("coordinator", r)
	unsigned.signer = nil
	forged := dial("coordinator", r)
	forged.signer = s0.signer // claims the coordinator's key, signs with s0's
	for name, c := range map[string]*Conn{"unsigned": unsigned, "forged": forged} {
		var re *RemoteError
		if _, err := c.Call(ctx, ctl1, []byte("x"), short); !errors.As(err, &re) || re.Code != CodeUnauthorized {
			t.Errorf("%s call: %v, want code %s", name, err, CodeUnauthorized)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("an unauthorised call reached the handler")
	}
	// The role check handlers apply to verified callers.
	asShard := context.WithValue(ctx, callerKey{}, Identity{Role: RoleShard, ID: "s0"})
	if err := RequireRole(asShard, RoleCoordinator); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("RequireRole let a shard make a coordinator-only call: %v", err)
	}
	if err := RequireRole(ctx, RoleCoordinator); err != nil {
		t.Errorf("without a roster every caller is accepted, got %v", err)
	}
}

// TestRosterHeartbeatsAndBlobs: a shard's beats on another shard's subject
// never arrive; shards and coordinators read and write the bucket, the
// client only reads it.
func TestRosterHeartbeatsAndBlobs(t *testing.T) {
	r, seeds := testRoster(t, "auth")
	srv := startServer(t, ServerConfig{Roster: r, JetStream: true, StoreDir: t.TempDir()})
	dial := func(name string) *Conn {
		return connect(t, srv.ClientURL(), Options{Name: name, NKeySeedFile: seeds[name], Roster: r})
	}
	coord, s0, client := dial("coordinator"), dial("shard-s0"), dial("client")
	subj := r.Subjects()
	hb, _ := subj.Heartbeat()
	seen := make(chan string, 64)
	stop, err := WatchHeartbeats(coord, hb, time.Second, func(id string, alive bool) {
		if alive {
			seen <- id
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	hb1, _ := subj.HeartbeatOf("s1")
	spoof := StartHeartbeat(s0, hb1, "s1", nil, 20*time.Millisecond)
	hb0, _ := subj.HeartbeatOf("s0")
	own := StartHeartbeat(s0, hb0, "s0", nil, 20*time.Millisecond)
	select {
	case id := <-seen:
		if id != "s0" {
			t.Errorf("first live process %q, want s0", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("s0's own heartbeats never arrived")
	}
	time.Sleep(200 * time.Millisecond)
	spoof()
	own()
	close(seen)
	for id := range seen {
		if id == "s1" {
			t.Errorf("shard s0 made s1 look alive")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bucket := BlobBucket(r.Cluster)
	ws, err := NewObjectBlobStore(ctx, s0, bucket)
	if err != nil {
		t.Fatalf("shard opens the bucket: %v", err)
	}
	key, err := ws.Put(ctx, []byte("checkpoint image"))
	if err != nil {
		t.Fatalf("shard writes an image: %v", err)
	}
	for name, c := range map[string]*Conn{"coordinator": coord, "client": client} {
		bs, err := NewObjectBlobStore(ctx, c, bucket)
		if err != nil {
			t.Fatalf("%s opens the bucket: %v", name, err)
		}
		if b, err := bs.Get(ctx, key); err != nil || string(b) != "checkpoint image" {
			t.Errorf("%s reads the image: %q, %v", name, b, err)
		}
	}
	cs, _ := NewObjectBlobStore(ctx, client, bucket)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if _, err := cs.Put(wctx, []byte("forged image")); err == nil {
		t.Errorf("the client wrote into the bucket")
	}
}

// BenchmarkCallSigned measures what request signatures add to a small
// request-reply round trip on loopback: compare the two sub-benchmarks.
func BenchmarkCallSigned(b *testing.B) {
	for _, signed := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "signed"}[signed]
		b.Run(name, func(b *testing.B) {
			r, seeds := testRoster(b, "bench")
			srv := startServer(b, ServerConfig{Roster: r})
			// Same server, permissions and inboxes; without signatures the
			// caller does not sign and the handler does not verify.
			coord := connect(b, srv.ClientURL(), Options{NKeySeedFile: seeds["coordinator"], Roster: r})
			shard := connect(b, srv.ClientURL(), Options{NKeySeedFile: seeds["shard-s0"], Roster: r})
			if !signed {
				coord.signer, shard.roster = nil, nil
			}
			ctl, _ := r.Subjects().Control("s0")
			stop, err := shard.Handle(ctl, "", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			req := make([]byte, 256)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := coord.Call(ctx, ctl, req, CallOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignVerify is the CPU cost of one request's signature: signing
// at the caller plus verifying at the handler.
func BenchmarkSignVerify(b *testing.B) {
	r, seeds := testRoster(b, "bench")
	kp, err := loadSeed(seeds["coordinator"])
	if err != nil {
		b.Fatal(err)
	}
	c := &Conn{roster: r, signer: kp, self: r.Identities[0]}
	m := nats.NewMsg("unipruning.bench.ctl.s0")
	m.Data = make([]byte, 256)
	m.Header.Set(hdrRequestID, "req")
	for b.Loop() {
		if err := c.sign(m); err != nil {
			b.Fatal(err)
		}
		if _, err := c.verify(m, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
