package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// TLSFiles names PEM files. For a client, CAFile is the set of roots the
// server certificate is verified against and CertFile/KeyFile an optional
// client certificate. For a server, CertFile/KeyFile are required and a
// non-empty CAFile turns on mutual TLS (clients must present a certificate
// signed by it).
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// DefaultServerMaxPayload is the server's max message size when
// ServerConfig.MaxPayload is 0. NATS' own default (1 MiB) is too small for a
// full 1 MiB stream chunk plus its header.
const DefaultServerMaxPayload = 4 << 20

// ServerConfig configures an embedded NATS server.
type ServerConfig struct {
	Host      string   // listen address; default 127.0.0.1
	Port      int      // -1 = random free port; 0 = NATS default 4222
	JetStream bool     // enable JetStream (needed by ObjectBlobStore)
	StoreDir  string   // JetStream storage directory; required with JetStream
	Token     string   // if set, clients must present this token
	NKeys     []string // if set, public user nkeys that may connect
	// Roster, if set, lists the users that may connect (by nkey), each
	// with the subject permissions of its role (Roster.Permissions).
	Roster     *Roster
	TLS        *TLSFiles // if set, clients must use TLS
	MaxPayload int       // max message size in bytes; default DefaultServerMaxPayload
	Name       string    // server name (shows in logs and JetStream); optional
	// Logger receives the server's log; nil silences it.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the listener; default 10 s.
	ReadyTimeout time.Duration
	// Cluster joins this server to a NATS cluster (routes between
	// servers), so the bus survives the loss of one server; with
	// JetStream, every server needs a unique Name and the same
	// ClusterName.
	ClusterName string
	ClusterHost string
	ClusterPort int      // 0 = no cluster listener
	Routes      []string // nats-route://host:port of the other servers
}

// Server is a running embedded NATS server.
type Server struct {
	ns  *server.Server
	tls bool
}

// StartServer starts an embedded NATS server and returns once it accepts
// client connections. The server does not install signal handlers.
func StartServer(cfg ServerConfig) (*Server, error) {
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	if opts.Port > 0 {
		// nats-server only reports a failed listen through its log and then
		// times out; probing first turns the common case into a clear error.
		l, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
		if err != nil {
			return nil, fmt.Errorf("transport: NATS server cannot listen: %w", err)
		}
		l.Close()
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("transport: create NATS server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogServerLogger{cfg.Logger}, false, false, false)
	}
	ns.Start()
	wait := cfg.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		return nil, fmt.Errorf("transport: NATS server on %s:%d not ready after %v (port in use, or bad JetStream store dir?)",
			opts.Host, cfg.Port, wait)
	}
	return &Server{ns: ns, tls: cfg.TLS != nil}, nil
}

func serverOptions(cfg ServerConfig) (*server.Options, error) {
	if n := btoi(cfg.Token != "") + btoi(len(cfg.NKeys) > 0) + btoi(cfg.Roster != nil); n > 1 {
		return nil, errors.New("transport: server config: choose one of Token, NKeys and Roster")
	}
	if cfg.JetStream && cfg.StoreDir == "" {
		return nil, errors.New("transport: server config: JetStream needs StoreDir (a directory owned by this server)")
	}
	if cfg.MaxPayload < 0 {
		return nil, fmt.Errorf("transport: server config: MaxPayload %d < 0", cfg.MaxPayload)
	}
	opts := &server.Options{
		ServerName:             cfg.Name,
		Host:                   cfg.Host,
		Port:                   cfg.Port,
		NoSigs:                 true,
		NoLog:                  cfg.Logger == nil,
		MaxPayload:             int32(cfg.MaxPayload),
		JetStream:              cfg.JetStream,
		StoreDir:               cfg.StoreDir,
		Authorization:          cfg.Token,
		DisableJetStreamBanner: true,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if err := clusterOptions(opts, cfg); err != nil {
		return nil, err
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultServerMaxPayload
	}
	if opts.MaxPayload > 64<<20 {
		return nil, fmt.Errorf("transport: server config: MaxPayload %d exceeds 64 MiB", cfg.MaxPayload)
	}
	return opts, serverSecurity(opts, cfg)
}

// clusterOptions sets up routes to the other servers of a NATS cluster.
func clusterOptions(opts *server.Options, cfg ServerConfig) error {
	if cfg.ClusterPort == 0 && len(cfg.Routes) == 0 {
		return nil
	}
	if cfg.ClusterName == "" {
		return errors.New("transport: server config: a cluster needs ClusterName")
	}
	if cfg.JetStream && cfg.Name == "" {
		return errors.New("transport: server config: a JetStream cluster needs a unique server Name")
	}
	opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port = cfg.ClusterName, cfg.ClusterHost, cfg.ClusterPort
	if opts.Cluster.Host == "" {
		opts.Cluster.Host = opts.Host
	}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return fmt.Errorf("transport: server config: route %q: want nats-route://host:port", r)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// serverSecurity adds nkey users and TLS to opts.
func serverSecurity(opts *server.Options, cfg ServerConfig) error {
	if r := cfg.Roster; r != nil {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("transport: server config: roster: %w", err)
		}
		for _, id := range r.Identities {
			p, err := r.Permissions(id)
			if err != nil {
				return err
			}
			opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: id.NKey, Permissions: p})
		}
	}
	for _, pub := range cfg.NKeys {
		if !nkeys.IsValidPublicUserKey(pub) {
			return fmt.Errorf("transport: server config: %q is not a public user nkey (starts with 'U')", pub)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub})
	}
	if cfg.TLS != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: cfg.TLS.CertFile,
			KeyFile:  cfg.TLS.KeyFile,
			CaFile:   cfg.TLS.CAFile,
			Verify:   cfg.TLS.CAFile != "",
		})
		if err != nil {
			return fmt.Errorf("transport: server TLS config: %w", err)
		}
		opts.TLS = true
		opts.TLSConfig = tc
		opts.TLSVerify = cfg.TLS.CAFile != ""
		opts.TLSTimeout = 5 // seconds; the default 2 s is tight on a busy 2-core box
	}
	return nil
}

// ClientURL is the URL clients should connect to. A wildcard listen address
// is replaced by the loopback address so the URL is always dialable locally.
func (s *Server) ClientURL() string {
	u, err := url.Parse(s.ns.ClientURL())
	if err != nil {
		return s.ns.ClientURL()
	}
	host, port := u.Hostname(), u.Port()
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	u.Host = net.JoinHostPort(host, port)
	return u.String()
}

// Port is the TCP port the server listens on (useful after Port: -1).
func (s *Server) Port() int {
	u, err := url.Parse(s.ns.ClientURL())
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Wait blocks until the server has been shut down.
func (s *Server) Wait() { s.ns.WaitForShutdown() }

// GenerateNKeyUser creates a user nkey pair: the public key goes into
// ServerConfig.NKeys, the seed into the file named by Options.NKeySeedFile
// (keep it secret, mode 0600).
func GenerateNKeyUser() (publicKey string, seed []byte, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, fmt.Errorf("transport: create nkey: %w", err)
	}
	defer kp.Wipe()
	publicKey, err = kp.PublicKey()
	if err != nil {
		return "", nil, err
	}
	s, err := kp.Seed()
	if err != nil {
		return "", nil, err
	}
	// Copy: Wipe overwrites the key pair's own buffer.
	return publicKey, append([]byte(nil), s...), nil
}

// slogServerLogger adapts nats-server's printf-style logger to slog.
type slogServerLogger struct{ l *slog.Logger }

func (a slogServerLogger) Noticef(f string, v ...any) {
	a.l.Info(fmt.Sprintf(f, v...), "src", "nats-server")
}
func (a slogServerLogger) Warnf(f string, v ...any) {
	a.l.Warn(fmt.Sprintf(f, v...), "src", "nats-server")
}
func (a slogServerLogger) Fatalf(f string, v ...any) {
	a.l.Error(fmt.Sprintf(f, v...), "src", "nats-server")
}
func (a slogServerLogger) Errorf(f string, v ...any) {
	a.l.Error(fmt.Sprintf(f, v...), "src", "nats-server")
}
func (a slogServerLogger) Debugf(f string, v ...any) {
	a.l.Debug(fmt.Sprintf(f, v...), "src", "nats-server")
}
func (a slogServerLogger) Tracef(f string, v ...any) {
	a.l.Debug(fmt.Sprintf(f, v...), "src", "nats-server")
}
