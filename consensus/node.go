package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Peer is a Raft server: its node ID and the address its transport listens on.
type Peer struct {
	ID   string
	Addr string
}

// Config configures a Node. Zero durations and counts take sane defaults.
type Config struct {
	NodeID        string
	BindAddr      string // host:port to listen on; port 0 picks a free one
	AdvertiseAddr string // address peers dial; defaults to the bound address
	DataDir       string // raft.db (log + stable store) and snapshots/

	// Bootstrap forms a new cluster of Peers (self is added if missing) when
	// DataDir holds no Raft state. With existing state the node just
	// restarts (the membership lives in the log; Peers is ignored). Without
	// Bootstrap a fresh node waits for a leader to AddVoter it. Every
	// initial member may bootstrap with the same Peers; a node that joins
	// later must not bootstrap.
	Bootstrap bool
	Peers     []Peer

	// TLS, when set, is used for both listening and dialing. Peers must
	// present certificates the config verifies: a client certificate is
	// always required, since any peer that speaks Raft can rewrite the job.
	TLS *tls.Config

	SnapshotThreshold uint64 // log entries between automatic snapshots
	SnapshotRetain    int    // snapshots kept on disk
	TrailingLogs      uint64 // log entries kept after a snapshot

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	Logger *slog.Logger
}

// Default timing and retention: raft's own defaults, suited to a LAN.
const (
	defaultHeartbeat     = time.Second
	defaultSnapThreshold = 8192
	defaultSnapRetain    = 2
	defaultTrailingLogs  = 10240
	transportTimeout     = 10 * time.Second
	transportMaxPool     = 3
	logCacheEntries      = 512
	boltLockTimeout      = 2 * time.Second
)

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.NodeID == "" || c.BindAddr == "" || c.DataDir == "" {
		return c, errors.New("consensus: NodeID, BindAddr and DataDir are required")
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = defaultHeartbeat
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = c.HeartbeatTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = c.HeartbeatTimeout / 2
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = defaultSnapThreshold
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = defaultSnapRetain
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = defaultTrailingLogs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TLS != nil {
		if err := checkTLS(c.TLS); err != nil {
			return c, err
		}
		c.TLS = mutualTLS(c.TLS)
	}
	return c, nil
}

// checkTLS refuses configs that would silently trust the system's public
// roots (anyone with a web certificate could join) or present no identity.
func checkTLS(cfg *tls.Config) error {
	if cfg.RootCAs == nil {
		return errors.New("consensus: TLS config needs RootCAs (the cluster's CA)")
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		return errors.New("consensus: TLS config needs this node's certificate")
	}
	return nil
}

// mutualTLS returns a copy of cfg that requires and verifies client
// certificates (against ClientCAs, or RootCAs when those are unset).
func mutualTLS(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.ClientCAs == nil {
		c.ClientCAs = c.RootCAs
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// raftConfig translates c into raft's configuration.
func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	// Commits are batched for CommitTimeout; keep it well under a heartbeat
	// so short test timeouts do not slow every Apply.
	rc.CommitTimeout = min(rc.CommitTimeout, max(c.HeartbeatTimeout/10, time.Millisecond))
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.Logger = newHclog(c.Logger, "raft")
	rc.NoLegacyTelemetry = true
	return rc
}

// Node is one Raft server holding an FSM replica.
type Node struct {
	cfg    Config
	fsm    *FSM
	raft   *raft.Raft
	store  *raftboltdb.BoltStore
	layer  *streamLayer
	leader *leaderFanout

	bootstrapped bool // this Open formed a new cluster

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open starts a node (see Config.Bootstrap for how it joins a cluster).
func Open(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, fsm: NewFSM()}
	if err := n.open(); err != nil {
		n.closeResources()
		return nil, err
	}
	return n, nil
}

// open builds stores, transport and raft; on error the caller releases
// whatever was opened.
func (n *Node) open() error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("consensus: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(cfg.DataDir, "raft.db"),
		// Without a timeout a second process on the same DataDir would
		// block forever on the file lock instead of failing.
		BoltOptions: &bbolt.Options{Timeout: boltLockTimeout},
	})
	if err != nil {
		return fmt.Errorf("consensus: open log store: %w", err)
	}
	n.store = store
	hl := newHclog(cfg.Logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, hl.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("consensus: open snapshot store: %w", err)
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("consensus: inspect %s: %w", cfg.DataDir, err)
	}
	if n.layer, err = newStreamLayer(cfg.BindAddr, cfg.AdvertiseAddr, cfg.TLS); err != nil {
		return err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.layer, MaxPool: transportMaxPool, Timeout: transportTimeout, Logger: hl.Named("transport"),
	})
	logs, err := raft.NewLogCache(logCacheEntries, store)
	if err != nil {
		trans.Close()
		return fmt.Errorf("consensus: %w", err)
	}
	n.raft, err = raft.NewRaft(cfg.raftConfig(), raftFSM{n.fsm}, logs, store, snaps, trans)
	if err != nil {
		trans.Close()
		return fmt.Errorf("consensus: start raft: %w", err)
	}
	n.leader = newLeaderFanout(n.raft.LeaderCh(), func() bool { return n.raft.State() == raft.Leader })
	if cfg.Bootstrap && !existing {
		if err := n.bootstrap(); err != nil {
			return err
		}
	}
	return nil
}

// bootstrap forms the initial configuration from Peers plus self.
func (n *Node) bootstrap() error {
	self := Peer{ID: n.cfg.NodeID, Addr: n.Addr()}
	servers := []raft.Server{{ID: raft.ServerID(self.ID), Address: raft.ServerAddress(self.Addr)}}
	for _, p := range n.cfg.Peers {
		if p.ID == self.ID {
			if p.Addr != self.Addr {
				return fmt.Errorf("consensus: peer list gives %s address %s, but it advertises %s", p.ID, p.Addr, self.Addr)
			}
			continue
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("consensus: bootstrap: %w", err)
	}
	n.bootstrapped = true
	return nil
}

// Shutdown stops raft, the transport and the stores; it is idempotent and
// returns once every goroutine the node started has ended.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() { n.shutdownErr = n.closeResources() })
	return n.shutdownErr
}

func (n *Node) closeResources() error {
	var errs []error
	if n.raft != nil {
		// Also closes the transport, and with it the stream layer.
		errs = append(errs, n.raft.Shutdown().Error())
	} else if n.layer != nil {
		errs = append(errs, n.layer.Close())
	}
	if n.leader != nil {
		n.leader.stop()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}
