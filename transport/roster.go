package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/nats-io/nkeys"
)

// Roles of a cluster's credentials (DESIGN §5.1).
const (
	// RoleCoordinator may drive jobs: send control calls to shards, serve
	// the coordinator subjects, read and write every checkpoint.
	RoleCoordinator = "coordinator"
	// RoleShard (one credential per shard id) may register under its own
	// id, publish its own heartbeats, answer its own control subject,
	// stream activations and store/read checkpoint images.
	RoleShard = "shard"
	// RoleClient may ask for status and read finished results (fetch).
	RoleClient = "client"
)

// Identity is one credential of a roster: a role, for shards the shard id,
// and the public user nkey that authenticates it on NATS and signs its
// requests.
type Identity struct {
	Role string `json:"role"`
	ID   string `json:"id,omitempty"`
	NKey string `json:"nkey"`
}

// Name is how logs and files name the identity: "coordinator", "client" or
// "shard-<id>".
func (i Identity) Name() string {
	if i.Role == RoleShard {
		return "shard-" + i.ID
	}
	return i.Role
}

// Roster lists every credential of one cluster (the roles.json that
// `unipruning creds` writes). The NATS server derives each user's subject
// permissions from it, and every process with a roster accepts requests
// only from the identities it names.
type Roster struct {
	// Cluster is the --cluster name the permissions are scoped to.
	Cluster string `json:"cluster"`
	// Prefix is the subject prefix; empty means DefaultSubjectPrefix.
	Prefix     string     `json:"prefix,omitempty"`
	Identities []Identity `json:"identities"`
}

// LoadRoster reads and validates a roster file.
func LoadRoster(path string) (*Roster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: roster: %w", err)
	}
	var r Roster
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("transport: roster %s: %w", path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("transport: roster %s: %w", path, err)
	}
	return &r, nil
}

// Validate checks roles, ids and keys, and that no key or shard id
// appears twice (a key with two roles would hold the union of their
// rights).
func (r *Roster) Validate() error {
	if _, err := r.Subjects().Coordinator(); err != nil {
		return err
	}
	keys, shards := map[string]bool{}, map[string]bool{}
	for _, id := range r.Identities {
		switch id.Role {
		case RoleCoordinator, RoleClient:
			if id.ID != "" {
				return fmt.Errorf("%s identity with an id %q (only shards have ids)", id.Role, id.ID)
			}
		case RoleShard:
			if err := ValidateToken(id.ID); err != nil {
				return fmt.Errorf("shard id: %w", err)
			}
			if shards[id.ID] {
				return fmt.Errorf("shard %q listed twice", id.ID)
			}
			shards[id.ID] = true
		default:
			return fmt.Errorf("unknown role %q (want coordinator, shard or client)", id.Role)
		}
		if !nkeys.IsValidPublicUserKey(id.NKey) {
			return fmt.Errorf("%s: %q is not a public user nkey", id.Name(), id.NKey)
		}
		if keys[id.NKey] {
			return fmt.Errorf("%s: nkey %s is listed twice", id.Name(), id.NKey)
		}
		keys[id.NKey] = true
	}
	if !slices.ContainsFunc(r.Identities, func(i Identity) bool { return i.Role == RoleCoordinator }) {
		return errors.New("no coordinator identity")
	}
	return nil
}

// Subjects is the subject layout the roster's permissions cover.
func (r *Roster) Subjects() Subjects { return Subjects{Prefix: r.Prefix, Job: r.Cluster} }

// Lookup finds the identity of a public key.
func (r *Roster) Lookup(nkey string) (Identity, bool) {
	for _, id := range r.Identities {
		if id.NKey == nkey {
			return id, true
		}
	}
	return Identity{}, false
}
