package transport

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Request signatures. NATS tells a subscriber nothing about who published
// a message, so with a Roster every request a Conn sends carries its
// identity's ed25519 signature (the nkey it authenticates with) and every
// handler of a Conn with a Roster refuses requests that are unsigned,
// badly signed, stale or signed by a key the roster does not list. The
// handler learns the verified caller through Caller(ctx) and decides what
// that role may do (a shard takes control calls from coordinators only).
const (
	hdrSigner  = "Up-Signer" // public nkey of the signer
	hdrSigTime = "Up-Sig-Time"
	hdrSig     = "Up-Sig" // base64url ed25519 over sigPayload
)

// CodeUnauthorized is the RemoteError.Code of requests refused for their
// signature or their caller's role.
const CodeUnauthorized = "unauthorized"

// ErrUnauthorized is wrapped by the errors of refused requests.
var ErrUnauthorized = errors.New("transport: caller not authorised")

// MaxSignatureAge bounds how old (or how far in the future) a signed
// request may be: a captured request cannot be replayed later than this.
const MaxSignatureAge = 10 * time.Minute

// loadSeed reads a user nkey seed file (a bare seed or a decorated one)
// the way nats.NkeyOptionFromSeed does, so requests are signed with the
// key the connection authenticates with.
func loadSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: nkey seed file: %w", err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return nil, fmt.Errorf("transport: nkey seed file %s: %w", path, err)
	}
	return kp, nil
}

func sigPayload(subject, requestID, at string, data []byte) []byte {
	h := sha256.Sum256(data)
	return []byte(subject + "\n" + requestID + "\n" + at + "\n" + hex.EncodeToString(h[:]))
}

// sign adds the signature headers to a request.
func (c *Conn) sign(m *nats.Msg) error {
	if c.signer == nil {
		return nil
	}
	at := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sig, err := c.signer.Sign(sigPayload(m.Subject, m.Header.Get(hdrRequestID), at, m.Data))
	if err != nil {
		return fmt.Errorf("transport: sign request: %w", err)
	}
	m.Header.Set(hdrSigner, c.self.NKey)
	m.Header.Set(hdrSigTime, at)
	m.Header.Set(hdrSig, base64.RawURLEncoding.EncodeToString(sig))
	return nil
}

// verify checks a request's signature against the roster and returns the
// caller.
func (c *Conn) verify(m *nats.Msg, now time.Time) (Identity, error) {
	pub := m.Header.Get(hdrSigner)
	if pub == "" {
		return Identity{}, fmt.Errorf("%w: unsigned request on %s", ErrUnauthorized, m.Subject)
	}
	id, ok := c.roster.Lookup(pub)
	if !ok {
		return Identity{}, fmt.Errorf("%w: signer %.12s… is not in the roster", ErrUnauthorized, pub)
	}
	at := m.Header.Get(hdrSigTime)
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: request from %s without a signature time", ErrUnauthorized, id.Name())
	}
	if d := now.Sub(time.UnixMilli(ms)); d > MaxSignatureAge || d < -MaxSignatureAge {
		return Identity{}, fmt.Errorf("%w: request from %s signed %v ago (more than %v: replayed, or clocks apart)",
			ErrUnauthorized, id.Name(), d.Round(time.Second), MaxSignatureAge)
	}
	sig, err := base64.RawURLEncoding.DecodeString(m.Header.Get(hdrSig))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: request from %s: malformed signature", ErrUnauthorized, id.Name())
	}
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	if err := kp.Verify(sigPayload(m.Subject, m.Header.Get(hdrRequestID), at, m.Data), sig); err != nil {
		return Identity{}, fmt.Errorf("%w: request claiming to be %s has a bad signature", ErrUnauthorized, id.Name())
	}
	return id, nil
}

type callerKey struct{}

// Caller is the verified identity of the request a Handler serves; ok is
// false when the Conn has no Roster (an unauthenticated, --insecure or
// in-process cluster), where every request is accepted.
func Caller(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(callerKey{}).(Identity)
	return id, ok
}

// RequireRole returns an error with code CodeUnauthorized unless the
// request ctx serves comes from one of roles (always nil without a
// Roster).
func RequireRole(ctx context.Context, roles ...string) error {
	id, ok := Caller(ctx)
	if !ok {
		return nil
	}
	for _, r := range roles {
		if id.Role == r {
			return nil
		}
	}
	return WithCode(CodeUnauthorized, fmt.Errorf("%w: %s may not call this (allowed: %s)",
		ErrUnauthorized, id.Name(), strings.Join(roles, ", ")))
}

// Identity is the roster identity this connection authenticates as (ok
// false without a Roster).
func (c *Conn) Identity() (Identity, bool) { return c.self, c.roster != nil }
