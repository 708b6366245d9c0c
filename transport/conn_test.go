package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServerRandomPortAndURL(t *testing.T) {
	s := startServer(t, ServerConfig{Host: "0.0.0.0"}) // wildcard must become loopback in the URL
	if s.Port() <= 0 {
		t.Fatalf("port %d", s.Port())
	}
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("ClientURL %q", s.ClientURL())
	}
	c := connect(t, s.ClientURL(), Options{Name: "t"})
	if c.MaxPayload() != DefaultServerMaxPayload {
		t.Errorf("max payload %d, want %d", c.MaxPayload(), DefaultServerMaxPayload)
	}
	got := make(chan string, 1)
	stop, err := c.Subscribe("x.y", func(_ string, d []byte) { got <- string(d) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("x.y", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "hi" {
			t.Fatalf("got %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

func TestServerConfigErrors(t *testing.T) {
	for _, cfg := range []ServerConfig{
		{Token: "t", NKeys: []string{"UABC"}},
		{JetStream: true},
		{NKeys: []string{"not-a-key"}},
		{TLS: &TLSFiles{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}},
	} {
		if s, err := StartServer(cfg); err == nil {
			s.Shutdown()
			t.Errorf("StartServer(%+v) succeeded", cfg)
		}
	}
}

func TestServerPortInUse(t *testing.T) {
	s := startServer(t, ServerConfig{})
	start := time.Now()
	s2, err := StartServer(ServerConfig{Port: s.Port()})
	if err == nil {
		s2.Shutdown()
		t.Fatal("second server on the same port started")
	}
	if !strings.Contains(err.Error(), "listen") || time.Since(start) > 2*time.Second {
		t.Fatalf("want a fast, clear error; got %v after %v", err, time.Since(start))
	}
}

func TestAuthToken(t *testing.T) {
	s := startServer(t, ServerConfig{Token: "s3cret"})
	for _, tok := range []string{"", "wrong"} {
		_, err := Connect(Options{URL: s.ClientURL(), Token: tok, Logger: quietLogger()})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("token %q: want ErrAuth, got %v", tok, err)
		}
		if !strings.Contains(err.Error(), "rejected") {
			t.Errorf("unclear error: %v", err)
		}
	}
	c := connect(t, s.ClientURL(), Options{Token: "s3cret"})
	if !c.IsConnected() {
		t.Fatal("not connected")
	}
}

func writeSeed(t *testing.T) (pub, file string) {
	t.Helper()
	pub, seed, err := GenerateNKeyUser()
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, file
}

func TestAuthNKey(t *testing.T) {
	pub, seedFile := writeSeed(t)
	_, otherSeed := writeSeed(t)
	s := startServer(t, ServerConfig{NKeys: []string{pub}})

	_, err := Connect(Options{URL: s.ClientURL(), Logger: quietLogger()})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("no nkey: want ErrAuth naming missing credentials, got %v", err)
	}
	_, err = Connect(Options{URL: s.ClientURL(), NKeySeedFile: otherSeed, Logger: quietLogger()})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("unknown nkey: want ErrAuth, got %v", err)
	}
	c := connect(t, s.ClientURL(), Options{NKeySeedFile: seedFile})
	rpcRoundTrip(t, c)
}

func rpcRoundTrip(t *testing.T, c *Conn) {
	t.Helper()
	stop, err := c.Handle("rt.echo", "", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	got, err := c.Call(context.Background(), "rt.echo", []byte("ping"), CallOptions{Timeout: 5 * time.Second})
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// testPKI writes a self-signed CA plus a server certificate for 127.0.0.1
// and a client certificate, both signed by the CA.
type testPKI struct{ dir, ca, srvCert, srvKey, cliCert, cliKey string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	p := testPKI{dir: t.TempDir()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unipruning test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.ca = p.writePEM(t, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return p.writePEM(t, name+".pem", "CERTIFICATE", der), p.writePEM(t, name+".key", "EC PRIVATE KEY", kder)
	}
	p.srvCert, p.srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.cliCert, p.cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p testPKI) writePEM(t *testing.T, name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	p := newTestPKI(t)
	s := startServer(t, ServerConfig{TLS: &TLSFiles{CertFile: p.srvCert, KeyFile: p.srvKey}})
	if !strings.HasPrefix(s.ClientURL(), "tls://") {
		t.Fatalf("ClientURL %q", s.ClientURL())
	}
	c := connect(t, s.ClientURL(), Options{TLS: &TLSFiles{CAFile: p.ca}})
	rpcRoundTrip(t, c)

	// Without the CA the self-signed chain must not be trusted.
	_, err := Connect(Options{URL: s.ClientURL(), TLS: &TLSFiles{}, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server accepted or unclear error: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	s := startServer(t, ServerConfig{TLS: &TLSFiles{CertFile: p.srvCert, KeyFile: p.srvKey, CAFile: p.ca}})
	if _, err := Connect(Options{URL: s.ClientURL(), TLS: &TLSFiles{CAFile: p.ca}, Logger: quietLogger(),
		ConnectTimeout: 2 * time.Second}); err == nil {
		t.Fatal("client without certificate accepted by mTLS server")
	}
	c := connect(t, s.ClientURL(), Options{TLS: &TLSFiles{CAFile: p.ca, CertFile: p.cliCert, KeyFile: p.cliKey}})
	rpcRoundTrip(t, c)
}

func TestConnectionStateLogged(t *testing.T) {
	s := startServer(t, ServerConfig{})
	port := s.Port()
	log, buf := captureLogger()
	c := connect(t, s.ClientURL(), Options{Name: "watcher", Logger: log})
	s.Shutdown()
	waitFor(t, 5*time.Second, "disconnect", func() bool { return !c.IsConnected() })
	s2 := startServer(t, ServerConfig{Port: port})
	_ = s2
	waitFor(t, 10*time.Second, "reconnect", c.IsConnected)
	waitFor(t, 2*time.Second, "log lines", func() bool {
		return buf.Contains("nats disconnected") && buf.Contains("nats reconnected")
	})
	if !buf.Contains("nats_client=watcher") {
		t.Errorf("log lacks client name: %s", buf.String())
	}
}

// TestDisconnectLogLevel: closing a connection ourselves is logged as
// information, not a warning; losing the server is a warning with its
// error.
func TestDisconnectLogLevel(t *testing.T) {
	srv := startServer(t, ServerConfig{})
	log, buf := captureLogger()
	c := connect(t, srv.ClientURL(), Options{Logger: log})
	c.Close()
	waitFor(t, 2*time.Second, "the disconnect log line", func() bool { return buf.Contains("nats disconnected") })
	if buf.Contains("level=WARN") {
		t.Fatalf("our own Close logged a warning:\n%s", buf)
	}
	log2, buf2 := captureLogger()
	connect(t, srv.ClientURL(), Options{Logger: log2})
	srv.Shutdown()
	waitFor(t, 5*time.Second, "the lost-server warning", func() bool { return buf2.Contains("level=WARN msg=\"nats disconnected\"") })
}
