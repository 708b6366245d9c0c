package consensus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// config issues a certificate for a node on 127.0.0.1, valid as both server
// and client, and returns a TLS config trusting only this CA.
func (ca *testCA) config(t *testing.T, name string) *tls.Config {
	t.Helper()
	key := newKey(t)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      ca.pool,
		MinVersion:   tls.VersionTLS13,
	}
}

// TestTLSCluster runs a 3-node cluster over mutual TLS and checks that
// nobody without a certificate from the cluster's CA gets in.
func TestTLSCluster(t *testing.T) {
	checkGoroutines(t)
	ca := newTestCA(t, "cluster CA")
	nodes, _ := startCluster(t, 3, func(i int) *tls.Config { return ca.config(t, "node") })
	seedJob(t, nodes)
	step(t, nodes, 1)
	waitConverged(t, nodes...)

	rogueCA := newTestCA(t, "rogue CA")
	t.Run("handshakes", func(t *testing.T) {
		leader := waitLeader(t, nodes...)
		good := ca.config(t, "client")
		if err := talk(leader.Addr(), good); err != nil {
			t.Fatalf("a client with a cluster certificate was refused: %v", err)
		}
		// A client trusting the cluster CA but presenting a rogue certificate.
		rogue := rogueCA.config(t, "rogue")
		rogue.RootCAs = ca.pool
		if err := talk(leader.Addr(), rogue); err == nil {
			t.Error("a client with a rogue certificate was accepted")
		}
		noCert := &tls.Config{RootCAs: ca.pool}
		if err := talk(leader.Addr(), noCert); err == nil {
			t.Error("a client without a certificate was accepted")
		}
	})

	t.Run("rogue voter", func(t *testing.T) {
		// Even if the leader is told to add it, a node with a foreign
		// certificate never receives the log.
		rogue := openNode(t, testConfig(t, "rogue", "127.0.0.1:0", rogueCA.config(t, "rogue")))
		onLeader(t, nodes, "add rogue", func(ctx context.Context, n *Node) error {
			return n.AddVoter(ctx, rogue.ID(), rogue.Addr())
		})
		mustApply(t, nodes, mustCmd(NewSetResult(NewID(), "after", "rogue")))
		time.Sleep(5 * testHeartbeat)
		if idx := rogue.AppliedIndex(); idx != 0 || rogue.State().Job != nil {
			t.Fatalf("rogue node applied up to %d", idx)
		}
		onLeader(t, nodes, "remove rogue", func(ctx context.Context, n *Node) error {
			return n.RemoveServer(ctx, rogue.ID())
		})
	})
	waitConverged(t, nodes...)
}

// talk completes a TLS handshake with addr and reads once: with TLS 1.3 the
// server checks the client's certificate after the client's handshake
// returns, so a refusal surfaces on the first read. A read that times out
// means the connection was accepted (raft waits for a request).
func talk(addr string, cfg *tls.Config) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := tls.DialWithDialer(&d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	_, err = conn.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	return err
}
