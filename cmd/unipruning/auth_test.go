package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// authCluster makes credentials and starts a NATS server that enforces
// them (what `unipruning creds` and `unipruning nats --auth` do).
func authCluster(t *testing.T, cluster string, shards ...string) (natsFlags, *transport.Server) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "creds")
	if err := (devPKI{cluster: cluster, shards: shards, hosts: []string{"localhost", "127.0.0.1"}}).write(mkdir(t, dir)); err != nil {
		t.Fatal(err)
	}
	cfg := transport.ServerConfig{Port: -1, JetStream: true, StoreDir: t.TempDir()}
	if err := natsSecurity(&cfg, dir, false, quietLogger()); err != nil {
		t.Fatal(err)
	}
	srv, err := transport.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return natsFlags{url: srv.ClientURL(), cluster: cluster, blobs: "jetstream", replicas: 1, auth: dir}, srv
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// as returns nf acting as the named identity.
func as(nf natsFlags, role string) natsFlags { nf.role = role; return nf }

// TestClusterAuth runs a job on a cluster with per-role credentials (TLS,
// nkeys, subject permissions, signed requests) while an attacker holding
// shard s0's credential tries what issue 12 class 6 found: drive shard s1
// (a forged restore image, an assign to a huge epoch), register as s1,
// make s1 look gone with a spoofed heartbeat; and a client without
// credentials tries to connect. Every attempt must fail, leave no trace
// (shard epochs, registrations, recoveries) and the job must end done with
// Γ equal to the one-process search bit for bit; the client key then
// fetches the same Γ store.
func TestClusterAuth(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	ref := search(t, spec, 2)
	nf, srv := authCluster(t, "authtest", "s0", "s1")
	out := filepath.Join(t.TempDir(), "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	servers := map[string]*shardrpc.Server{}
	for _, id := range []string{"s0", "s1"} {
		sf := as(nf, "shard-"+id)
		conn, subj, blobs, err := sf.dial(ctx, "shard-"+id, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		s, err := shardrpc.Serve(ctx, conn, subj, id, shardrpc.ServeOptions{Load: shard.Load, Blobs: blobs, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); conn.Close() })
		servers[id] = s
		go shardrpc.Register(ctx, conn, subj, id, "in-process")
	}
	reps := startReplicas(t, ctx, as(nf, transport.RoleCoordinator), out, spec)
	for i := range reps {
		// Only an attack may move the epoch: no load-induced shard loss.
		reps[i].cfg.HeartbeatTimeout = 10 * time.Second
		if os.Getenv("AUTH_DEBUG") != "" {
			reps[i].cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	}

	// Every heartbeat that reaches a coordinator: s1's must all come from
	// its one real incarnation.
	var hbMu sync.Mutex
	incs := map[string]bool{}
	hbSubj, _ := reps[0].cfg.Subj.Heartbeat()
	stopHB, err := reps[0].conn.Subscribe(hbSubj, func(subject string, data []byte) {
		var b struct {
			ID  string `json:"id"`
			Inc string `json:"inc"`
		}
		if json.Unmarshal(data, &b) == nil && b.ID == "s1" {
			hbMu.Lock()
			incs[b.Inc] = true
			hbMu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopHB()
	var attack sync.Once
	var attacked bool
	for i := range reps {
		reps[i].onStep = func(s coordinator.StepInfo) {
			if s.Step == 4 {
				attack.Do(func() { attackCluster(t, ctx, nf, srv); attacked = true })
			}
		}
	}
	errs := make(chan error, len(reps))
	for i := range reps {
		go func(r *replica) { errs <- r.run(ctx) }(&reps[i])
	}
	for range reps {
		if err := <-errs; err != nil {
			t.Fatalf("replica: %v", err)
		}
	}
	if !attacked {
		t.Fatal("the attack never ran")
	}
	// The attacks left no trace: shard s1 was never moved to epoch 999999,
	// its registration is its own, and no spoofed beat arrived (a leader
	// election under load may still move the epoch).
	for i := range reps {
		st := reps[i].node.State()
		if st.Status != "done" || st.Assignment.Epoch > 10 {
			t.Errorf("replica %s: status %q at epoch %d; want done", reps[i].cfg.ID, st.Status, st.Assignment.Epoch)
		}
		if len(st.Members) != 2 || len(st.Members["s0"].Addr) > 64 {
			t.Errorf("replica %s: members %d (s0's address %d bytes): an attacker's registration was applied",
				reps[i].cfg.ID, len(st.Members), len(st.Members["s0"].Addr))
		}
		if m := st.Members["s1"]; m.Addr != "in-process" {
			t.Errorf("replica %s: shard s1's registration is %+v: the attacker's registration was applied", reps[i].cfg.ID, m)
		}
	}
	hbMu.Lock()
	if len(incs) != 1 {
		t.Errorf("shard s1's heartbeats came from %d incarnations %v: a spoofed beat arrived", len(incs), incs)
	}
	hbMu.Unlock()
	for id, s := range servers {
		if ep := s.Status().Epoch; ep > 10 {
			t.Errorf("shard %s ends at epoch %d: a forged assign moved its fence", id, ep)
		}
	}
	requireSameGamma(t, ref, out, "an attacked cluster with per-role credentials, against the one-process search")

	// The client key fetches the Γ store from the bucket (what `fetch` does).
	cf := as(nf, transport.RoleClient)
	client, _, blobs, err := cf.dial(ctx, "client", quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fetched := filepath.Join(t.TempDir(), "fetched")
	if err := gammastore.Fetch(ctx, blobs, reps[0].node.State().Results["gamma_manifest"], mkdir(t, fetched)); err != nil {
		t.Fatalf("client fetch: %v", err)
	}
	requireSameGamma(t, ref, fetched, "the Γ store fetched with the client key")
}

// attackCluster is the attacker of TestClusterAuth.
func attackCluster(t *testing.T, ctx context.Context, nf natsFlags, srv *transport.Server) {
	// TLS verified against the cluster's CA, but no credential.
	tlsOnly := &transport.TLSFiles{CAFile: filepath.Join(nf.auth, credsCA)}
	if _, err := transport.Connect(transport.Options{URL: srv.ClientURL(), TLS: tlsOnly, Logger: quietLogger()}); !errors.Is(err, transport.ErrAuth) {
		t.Errorf("a client without credentials: %v, want %v", err, transport.ErrAuth)
	}
	cf := as(nf, transport.RoleClient)
	client, subj, err := cf.connect("client", quietLogger())
	if err != nil {
		t.Errorf("client connect: %v", err)
		return
	}
	defer client.Close()
	if st, err := queryStatus(ctx, client, subj); err != nil || st.State != "running" {
		t.Errorf("client status: %+v, %v", st, err)
	}

	ef := as(nf, "shard-s0")
	evil, subj, blobs, err := ef.dial(ctx, "evil", quietLogger())
	if err != nil {
		t.Errorf("attacker connect: %v", err)
		return
	}
	defer evil.Close()
	// A forged checkpoint image: the shard's key may write images...
	forged := []byte("forged checkpoint image")
	key, err := blobs.Put(ctx, forged)
	if err != nil {
		t.Errorf("shard s0 stores an image: %v", err)
	}
	// ...but no control call of s0's reaches s1: not the restore of it,
	// not an assign that would raise s1's epoch fence.
	quick := shardrpc.CallOptions{Short: 300 * time.Millisecond, Long: 300 * time.Millisecond, Retries: -1}
	r := shardrpc.NewRemote(evil, subj, "s1", nn.Part{From: 0, To: 1, Embed: true}, 999999, quick)
	if err := r.Restore(ctx, job.RefOf(key, forged)); err == nil {
		t.Errorf("shard s0's credential made shard s1 restore a forged image")
	}
	if _, err := r.Assign(ctx, job.Spec{}, 0, 2); err == nil {
		t.Errorf("shard s0's credential assigned shard s1 to epoch 999999")
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if err := shardrpc.Register(rctx, evil, subj, "s1", "evil"); !shardrpc.IsCode(err, transport.CodeUnauthorized) {
		t.Errorf("shard s0 registering as s1: %v, want a refusal as unauthorised", err)
	}
	// Registrations that would grow the Raft log: new ids (a key registers
	// only its own) and an oversize address for its own id.
	for i := range 20 {
		if err := shardrpc.Register(rctx, evil, subj, fmt.Sprintf("x%d", i), "evil"); !shardrpc.IsCode(err, transport.CodeUnauthorized) {
			t.Errorf("shard s0 registering as x%d: %v, want a refusal as unauthorised", i, err)
			break
		}
	}
	body, _ := json.Marshal(shardrpc.RegisterRequest{ID: "s0", Addr: strings.Repeat("a", 1<<20)})
	coord, _ := subj.Coordinator()
	var resp shardrpc.RegisterResponse
	if err := transport.CallJSON(rctx, evil, coord, shardrpc.CoordinatorRequest{Method: "register", Body: body}, &resp,
		transport.CallOptions{Timeout: 5 * time.Second}); err == nil && resp.OK {
		t.Errorf("a registration with a 1 MiB address was accepted")
	}
	// A "leaving" beat for s1 would make the coordinator recover at once.
	hb, _ := subj.HeartbeatOf("s1")
	transport.StartHeartbeat(evil, hb, "s1", nil, time.Hour)()
	hb, _ = subj.Heartbeat()
	if err := evil.Publish(hb[:len(hb)-1]+"s1", []byte(`{"id":"s1","inc":"x","seq":1,"leaving":true}`)); err != nil {
		t.Errorf("publish: %v", err)
	}
	if err := evil.Flush(ctx); err != nil {
		t.Errorf("flush: %v", err)
	}
}

// TestShardRefusesUnauthorisedCalls: with a NATS server that checks only
// who connects (every key may publish anywhere, e.g. an external server
// with one account), a shard serving with the roster still takes control
// calls from coordinators only, and a restore only with the sha256 of a
// committed manifest; a forged image under a coordinator's restore is
// refused by the image checks.
func TestShardRefusesUnauthorisedCalls(t *testing.T) {
	spec, err := resolveSpec(smallSpec(t, job.ModeGlobal))
	if err != nil {
		t.Fatal(err)
	}
	dir := mkdir(t, filepath.Join(t.TempDir(), "creds"))
	if err := (devPKI{cluster: "open", shards: []string{"s0", "s1"}, hosts: []string{"127.0.0.1"}}).write(dir); err != nil {
		t.Fatal(err)
	}
	roster, err := transport.LoadRoster(filepath.Join(dir, credsRoster))
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.ServerConfig{Port: -1}
	for _, id := range roster.Identities {
		cfg.NKeys = append(cfg.NKeys, id.NKey)
	}
	srv, err := transport.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nf := natsFlags{url: srv.ClientURL(), cluster: "open", blobs: "fs:" + t.TempDir(), auth: dir}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(role string) (*transport.Conn, transport.Subjects, shardrpc.BlobStore) {
		f := as(nf, role)
		opts := transport.Options{URL: f.url, Name: role, Logger: quietLogger()}
		if err := f.applyAuth(&opts); err != nil {
			t.Fatal(err)
		}
		opts.TLS = nil // this server speaks plain TCP
		conn, err := transport.Connect(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		blobs, err := f.blobStore(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return conn, transport.Subjects{Job: "open"}, blobs
	}
	conn, subj, blobs := dial("shard-s1")
	s, err := shardrpc.Serve(ctx, conn, subj, "s1", shardrpc.ServeOptions{Load: shard.Load, Blobs: blobs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	parts := coordinatorPlan(t, spec, 1)
	quick := shardrpc.CallOptions{Retries: -1}

	evil, _, _ := dial("shard-s0")
	if _, err := shardrpc.NewRemote(evil, subj, "s1", parts[0], 5, quick).Assign(ctx, spec, 0, 1); !shardrpc.IsCode(err, transport.CodeUnauthorized) {
		t.Fatalf("shard s0 assigning shard s1: %v, want code %s", err, transport.CodeUnauthorized)
	}
	if st := s.Status(); st.Epoch != 0 || st.Loaded {
		t.Fatalf("a refused call changed the shard: %+v", st)
	}
	coord, _, cblobs := dial(transport.RoleCoordinator)
	r := shardrpc.NewRemote(coord, subj, "s1", parts[0], 1, quick)
	if _, err := r.Assign(ctx, spec, 0, 1); err != nil {
		t.Fatalf("coordinator assign: %v", err)
	}
	forged := []byte("forged checkpoint image")
	key, err := cblobs.Put(ctx, forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, job.Ref{Key: key}); !shardrpc.IsCode(err, transport.CodeBadRequest) {
		t.Errorf("restore without a committed sha256: %v, want code %s", err, transport.CodeBadRequest)
	}
	if err := r.Restore(ctx, job.RefOf(key, forged)); err == nil {
		t.Errorf("the shard restored a forged image")
	}
	if err := r.Restore(ctx, job.Ref{Key: key, SHA256: job.SHA256([]byte("the committed image"))}); !shardrpc.IsCode(err, shardrpc.CodeChecksum) {
		t.Errorf("restore of an image whose sha256 is not the committed one: %v, want code %s", err, shardrpc.CodeChecksum)
	}
}

func coordinatorPlan(t *testing.T, spec job.Spec, n int) []nn.Part {
	t.Helper()
	l, err := openModel(spec.Model, spec.Tokenizer, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.ck.Close()
	parts, err := coordinator.Plan(l.ck.Config, n)
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

// TestCredsAndRefusals: `creds` writes a private directory whose secrets
// are 0600; the cluster roles refuse to start without authentication
// (exit 2) unless --insecure.
func TestCredsAndRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	if err, code, _ := execute(t, "creds", "--out", dir, "--cluster", "c", "--shard-ids", "s0,s1"); err != nil {
		t.Fatalf("creds: %v (exit %d)", err, code)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("creds dir: %v %v", st, err)
	}
	for name, mode := range map[string]os.FileMode{credsRoster: 0o644, credsCA: 0o644, credsCAKey: 0o600,
		"nats-server-key.pem": 0o600, "raft-key.pem": 0o600, "coordinator.nk": 0o600, "shard-s0.nk": 0o600,
		"shard-s1.nk": 0o600, "client.nk": 0o600} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", name, err, mode)
		}
	}
	r, err := transport.LoadRoster(filepath.Join(dir, credsRoster))
	if err != nil || r.Cluster != "c" || len(r.Identities) != 4 {
		t.Fatalf("roster %+v, %v", r, err)
	}
	raft := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nats", "--port", "-1", "--store", t.TempDir()}, "refusing to serve a cluster without authentication"},
		{[]string{"shard", "--id", "s0", "--nats", "nats://127.0.0.1:1"}, "refusing to run a cluster role without authentication"},
		{[]string{"coordinator", "--id", "c1", "--raft-dir", raft, "--out", raft + "/out"}, "refusing to run a cluster role without authentication"},
		{[]string{"shard", "--id", "s0", "--insecure", "--auth", dir}, "--insecure and --auth exclude each other"},
		{[]string{"shard", "--id", "s0", "--auth", dir}, "the credentials are for cluster \"c\""},
		{[]string{"creds", "--out", filepath.Join(t.TempDir(), "x"), "--cluster", "a.b"}, "--cluster a.b"},
		{[]string{"creds", "--out", filepath.Join(t.TempDir(), "x"), "--shard-ids", ""}, "--shard-ids"},
	}
	for _, c := range cases {
		err, code, _ := execute(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || code != 2 {
			t.Errorf("%s: got %v (exit %d), want %q (exit 2)", strings.Join(c.args, " "), err, code, c.want)
		}
	}
}
