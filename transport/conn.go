package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Options configures a client connection.
type Options struct {
	URL          string // e.g. nats://127.0.0.1:4222 (comma-separated for a cluster)
	Name         string // shows up in server monitoring; e.g. "shard-3"
	Token        string
	NKeySeedFile string // file holding a user nkey seed (see GenerateNKeyUser)
	CredsFile    string // NATS .creds file (JWT + seed)
	TLS          *TLSFiles
	// Roster, when set, makes this an authenticated cluster connection:
	// NKeySeedFile must hold the seed of one of its identities; requests
	// are signed with it, replies arrive below that identity's own
	// InboxPrefix, and handlers accept only requests signed by the
	// roster's identities (see Caller).
	Roster *Roster
	// ConnectTimeout bounds the initial dial; default 5 s.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts; default 250 ms.
	ReconnectWait time.Duration
	// MaxReconnects bounds reconnect attempts after a lost connection;
	// -1 retries forever, 0 means the default (-1: a shard must ride out a
	// restarting server rather than give up).
	MaxReconnects int
	// Logger receives connection state changes; default slog.Default().
	Logger *slog.Logger
}

// Conn is a client connection to NATS. It is safe for concurrent use.
type Conn struct {
	nc  *nats.Conn
	log *slog.Logger
	// hook, when set (tests only), sees every message this package publishes
	// and may drop it (return nil) or replace it. It is how the tests inject
	// loss, corruption and replays without a flaky network.
	hook atomic.Pointer[publishHook]

	roster *Roster       // nil: no request signatures
	signer nkeys.KeyPair // the identity's key (with roster)
	self   Identity
}

type publishHook func(subject string, data []byte) []byte

// ErrAuth is wrapped by Connect when the server rejected the credentials.
var ErrAuth = errors.New("transport: NATS authorization failed")

// Connect dials the server and waits for the connection to be established.
// It does not retry the initial dial: a wrong URL or wrong credentials fail
// fast with a descriptive error.
func Connect(opts Options) (*Conn, error) {
	if opts.URL == "" {
		return nil, errors.New("transport: connect: empty URL")
	}
	c := &Conn{log: opts.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("nats_client", opts.Name)
	no, err := c.natsOptions(opts)
	if err != nil {
		return nil, err
	}
	if opts.Roster != nil {
		if err := c.bindIdentity(opts); err != nil {
			return nil, err
		}
		no = append(no, nats.CustomInboxPrefix(InboxPrefix(c.self)))
	}
	nc, err := nats.Connect(opts.URL, no...)
	if err != nil {
		return nil, connectError(opts, err)
	}
	c.nc = nc
	return c, nil
}

// bindIdentity loads the signing key and finds its identity in the roster.
func (c *Conn) bindIdentity(opts Options) error {
	if opts.NKeySeedFile == "" {
		return errors.New("transport: a roster needs the connection's nkey seed file (its identity's key)")
	}
	kp, err := loadSeed(opts.NKeySeedFile)
	if err != nil {
		return err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("transport: nkey seed file %s: %w", opts.NKeySeedFile, err)
	}
	id, ok := opts.Roster.Lookup(pub)
	if !ok {
		return fmt.Errorf("transport: the key in %s (%s) is not in the roster of cluster %q", opts.NKeySeedFile, pub, opts.Roster.Cluster)
	}
	c.roster, c.signer, c.self = opts.Roster, kp, id
	return nil
}

func connectError(opts Options, err error) error {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) {
		have := "no credentials"
		switch {
		case opts.Token != "":
			have = "a token"
		case opts.NKeySeedFile != "":
			have = "an nkey seed"
		case opts.CredsFile != "":
			have = "a creds file"
		}
		return fmt.Errorf("%w: server %s rejected the client (%s given; check the server's token/nkeys): %v",
			ErrAuth, opts.URL, have, err)
	}
	return fmt.Errorf("transport: connect to %s: %w", opts.URL, err)
}

func (c *Conn) natsOptions(opts Options) ([]nats.Option, error) {
	d := func(v, def time.Duration) time.Duration {
		if v <= 0 {
			return def
		}
		return v
	}
	maxRe := opts.MaxReconnects
	if maxRe == 0 {
		maxRe = -1
	}
	no := []nats.Option{
		nats.Name(opts.Name),
		nats.Timeout(d(opts.ConnectTimeout, 5*time.Second)),
		nats.ReconnectWait(d(opts.ReconnectWait, 250*time.Millisecond)),
		nats.MaxReconnects(maxRe),
		// Streams keep their own copies for retransmission, so a large
		// reconnect buffer only duplicates memory; 32 MiB absorbs short blips.
		nats.ReconnectBufSize(32 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				// Our own Close: normal. A lost server comes with its error.
				c.log.Info("nats disconnected")
				return
			}
			c.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { c.log.Debug("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			c.log.Error("nats async error", "subject", subj, "err", err)
		}),
	}
	auth, err := authOptions(opts)
	return append(no, auth...), err
}

// authOptions translates credentials and TLS settings.
func authOptions(opts Options) ([]nats.Option, error) {
	var no []nats.Option
	if opts.Token != "" {
		no = append(no, nats.Token(opts.Token))
	}
	if opts.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("transport: nkey seed file %s: %w", opts.NKeySeedFile, err)
		}
		no = append(no, o)
	}
	if opts.CredsFile != "" {
		no = append(no, nats.UserCredentials(opts.CredsFile))
	}
	if t := opts.TLS; t != nil {
		if t.CAFile != "" {
			no = append(no, nats.RootCAs(t.CAFile))
		}
		if t.CertFile != "" || t.KeyFile != "" {
			no = append(no, nats.ClientCert(t.CertFile, t.KeyFile))
		}
		no = append(no, nats.Secure())
	}
	return no, nil
}

// Close closes the connection. Pending publishes are flushed first.
func (c *Conn) Close() {
	c.nc.Close()
}

// Logger is the connection's logger (streams and heartbeats default to it).
func (c *Conn) Logger() *slog.Logger { return c.log }

// IsConnected reports whether the connection is currently up.
func (c *Conn) IsConnected() bool { return c.nc.IsConnected() }

// MaxPayload is the largest message the connected server accepts.
func (c *Conn) MaxPayload() int { return int(c.nc.MaxPayload()) }

// Flush waits until the server has processed everything published so far.
func (c *Conn) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("transport: flush: %w", err)
	}
	return nil
}

// ConnStats are counters of one connection.
type ConnStats struct {
	InMsgs, OutMsgs, InBytes, OutBytes, Reconnects uint64
}

// Stats returns the connection's message and byte counters.
func (c *Conn) Stats() ConnStats {
	s := c.nc.Stats()
	return ConnStats{s.InMsgs, s.OutMsgs, s.InBytes, s.OutBytes, s.Reconnects}
}

// Publish sends one fire-and-forget message (at most once delivery).
func (c *Conn) Publish(subject string, data []byte) error {
	return c.publish(subject, data)
}

func (c *Conn) publish(subject string, data []byte) error {
	if h := c.hook.Load(); h != nil {
		if data = (*h)(subject, data); data == nil {
			return nil
		}
	}
	return c.nc.Publish(subject, data)
}

// Subscribe calls fn for each message on subject (wildcards allowed), one
// message at a time, in arrival order. fn owns data (it is not reused).
// stop unsubscribes and is idempotent.
func (c *Conn) Subscribe(subject string, fn func(subject string, data []byte)) (stop func(), err error) {
	sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Subject, m.Data) })
	if err != nil {
		return nil, fmt.Errorf("transport: subscribe %s: %w", subject, err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = sub.Unsubscribe() }) }, nil
}
