package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/unipruning/unipruning/transport"
)

// Files of a credentials directory (`unipruning creds`). Every cluster role
// finds its material here through --auth DIR.
const (
	credsRoster     = "roles.json"  // public: who may connect as what
	credsCA         = "ca.pem"      // public: trust anchor of every certificate
	credsCAKey      = "ca-key.pem"  // secret: keep off the cluster hosts
	credsServer     = "nats-server" // .pem/-key.pem: the NATS server's TLS pair
	credsRaft       = "raft"        // .pem/-key.pem: mutual TLS between coordinator replicas
	credsSeedSuffix = ".nk"         // <identity name>.nk: the role's nkey seed (secret)
	credsReadme     = "README.txt"  // what goes where
	credsValidity   = 365 * 24 * time.Hour
)

// devPKI is what `unipruning creds` makes: a CA, a server certificate for
// the NATS server and the coordinators' Raft links, and one nkey per role.
type devPKI struct {
	cluster string
	shards  []string
	hosts   []string // DNS names and IPs the certificates are valid for
}

// write creates every file in dir (which must exist and be private).
func (p devPKI) write(dir string) error {
	caKey, caCert, caDER, err := newCA(p.cluster)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, credsCA), "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, credsCAKey), caKey); err != nil {
		return err
	}
	for _, name := range []string{credsServer, credsRaft} {
		if err := p.leaf(dir, name, caKey, caCert); err != nil {
			return err
		}
	}
	roster := transport.Roster{Cluster: p.cluster}
	ids := []transport.Identity{{Role: transport.RoleCoordinator}, {Role: transport.RoleClient}}
	for _, s := range p.shards {
		ids = append(ids, transport.Identity{Role: transport.RoleShard, ID: s})
	}
	for _, id := range ids {
		pub, seed, err := transport.GenerateNKeyUser()
		if err != nil {
			return err
		}
		id.NKey = pub
		roster.Identities = append(roster.Identities, id)
		if err := os.WriteFile(filepath.Join(dir, id.Name()+credsSeedSuffix), append(seed, '\n'), 0o600); err != nil {
			return err
		}
	}
	if err := roster.Validate(); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(dir, credsRoster), roster); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, credsReadme), []byte(credsReadmeText(p)), 0o644)
}

func credsReadmeText(p devPKI) string {
	return fmt.Sprintf(`unipruning cluster credentials for cluster %q (made by 'unipruning creds').

Every host gets roles.json and ca.pem, plus only its own role's secret:
  NATS server      nats-server.pem, nats-server-key.pem   (unipruning nats --auth DIR)
  coordinators     coordinator.nk, raft.pem, raft-key.pem (unipruning coordinator --auth DIR)
  shard <id>       shard-<id>.nk                          (unipruning shard --id <id> --auth DIR)
  status / fetch   client.nk                              (unipruning status --auth DIR)
ca-key.pem signs the certificates: keep it off the cluster (it is only needed to
make new certificates). Certificates are valid for %v and for the hosts %v.
`, p.cluster, credsValidity, p.hosts)
}

func newCA(cluster string) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "unipruning dev CA (" + cluster + ")"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(credsValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, der, err
}

// leaf writes name.pem and name-key.pem: a certificate for p.hosts usable
// as TLS server and client (Raft links are mutual).
func (p devPKI) leaf(dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "unipruning " + name + " (" + p.cluster + ")"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(credsValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range p.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, name+".pem"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, name+"-key.pem"), key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
