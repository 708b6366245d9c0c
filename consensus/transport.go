package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's byte transport: TCP, optionally wrapped in mutual
// TLS. It tracks every connection it hands out, because raft's
// NetworkTransport closes neither pooled outgoing connections nor inbound
// ones on shutdown; closing them here is what lets those goroutines end.
type streamLayer struct {
	ln        net.Listener // plain TCP; TLS is layered per connection
	advertise net.Addr
	tls       *tls.Config // nil = plain TCP

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(bind, advertise string, tlsCfg *tls.Config) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("consensus: listen %s: %w", bind, err)
	}
	adv, err := advertiseAddr(ln.Addr().(*net.TCPAddr), advertise)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &streamLayer{ln: ln, advertise: adv, tls: tlsCfg, conns: map[*trackedConn]struct{}{}}, nil
}

// advertiseAddr returns the address peers should dial. A given address is
// kept as written, not resolved: peers resolve host names themselves, and a
// TLS peer verifies the certificate against that name. Binding to all
// interfaces gives no usable address, so then one must be given.
func advertiseAddr(bound *net.TCPAddr, advertise string) (net.Addr, error) {
	if advertise == "" {
		if bound.IP.IsUnspecified() {
			return nil, fmt.Errorf("consensus: bound to %s; set AdvertiseAddr to an address peers can reach", bound)
		}
		return bound, nil
	}
	host, port, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("consensus: advertise address %q: %w", advertise, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() || port == "" || port == "0" {
		return nil, fmt.Errorf("consensus: advertise address %q must name a reachable host and a port", advertise)
	}
	return namedAddr(advertise), nil
}

// namedAddr is a TCP address kept in its textual form.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }

// Accept returns the next inbound connection. The TLS handshake is not done
// here but on the connection's first read, in raft's per-connection
// goroutine, so one slow or hostile client cannot stall the accept loop.
func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	tc, err := s.track(c)
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		return tls.Server(tc, s.tls), nil
	}
	return tc, nil
}

// Dial connects to a peer; with TLS the handshake completes within timeout.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	tc, err := s.track(c)
	if err != nil {
		return nil, err
	}
	if s.tls == nil {
		return tc, nil
	}
	cfg := s.tls.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(string(addr))
		cfg.ServerName = host
	}
	conn := tls.Client(tc, cfg)
	if timeout > 0 {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("consensus: TLS handshake with %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// Addr is the advertised address, which raft passes to peers.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Close stops accepting and closes every live connection.
func (s *streamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

var errLayerClosed = errors.New("consensus: transport closed")

func (s *streamLayer) track(c net.Conn) (*trackedConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, errLayerClosed
	}
	tc := &trackedConn{Conn: c, layer: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *streamLayer) untrack(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// trackedConn removes itself from its layer when closed.
type trackedConn struct {
	net.Conn
	layer *streamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.layer.untrack(c) })
	return c.Conn.Close()
}
