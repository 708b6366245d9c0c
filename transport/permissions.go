package transport

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// InboxPrefix is the reply-subject prefix of an identity's connection.
// Each identity may subscribe only below its own prefix, so nobody reads
// another process's replies (checkpoint references, status, registrations).
func InboxPrefix(id Identity) string { return "_INBOX." + id.Name() }

// BlobBucket is the JetStream Object Store bucket of a cluster.
func BlobBucket(cluster string) string { return "unipruning-" + cluster }

// Permissions are the NATS subject permissions of one identity (see
// DESIGN §5.1 and the README's threat model):
//
//   - coordinator: everything under <prefix>.<cluster>.> (control calls to
//     shards, registrations, status), the checkpoint bucket, replies to the
//     requests it serves;
//   - shard <id>: publishes its own heartbeats (hb.<id>), its registration
//     (coord), activation streams and their acks, replies to the control
//     calls it receives; subscribes only to its own control subject and
//     to streams; reads and writes checkpoint images;
//   - client: asks for status (coord.status) and reads the bucket (fetch);
//     it publishes nothing else and cannot write images.
//
// Everyone subscribes to its own inbox and nothing else's.
func (r *Roster) Permissions(id Identity) (*server.Permissions, error) {
	s := r.Subjects()
	base, err := s.join("x")
	if err != nil {
		return nil, err
	}
	base = base[:len(base)-len(".x")]
	stream := "OBJ_" + BlobBucket(r.Cluster)
	obj := "$O." + BlobBucket(r.Cluster) + ".>"
	read := []string{
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.FC." + stream + ".>",
		"$JS.ACK." + stream + ".>",
	}
	// Shards store images (content-addressed, never replaced); purging the
	// bucket (object deletion) is the coordinators' alone.
	write := append([]string{"$JS.API.STREAM.CREATE." + stream, obj}, read...)
	purge := "$JS.API.STREAM.PURGE." + stream
	inbox := InboxPrefix(id) + ".>"
	p := &server.Permissions{Publish: &server.SubjectPermission{}, Subscribe: &server.SubjectPermission{}}
	switch id.Role {
	case RoleCoordinator:
		p.Publish.Allow = append([]string{base + ".>", purge}, write...)
		p.Subscribe.Allow = []string{base + ".>", inbox}
		p.Response = &server.ResponsePermission{MaxMsgs: 1}
	case RoleShard:
		hb, err := s.HeartbeatOf(id.ID)
		if err != nil {
			return nil, err
		}
		ctl, _ := s.Control(id.ID)
		coord, _ := s.Coordinator()
		p.Publish.Allow = append([]string{hb, coord, base + ".stream.>"}, write...)
		p.Subscribe.Allow = []string{ctl, base + ".stream.>", inbox}
		p.Response = &server.ResponsePermission{MaxMsgs: 1}
	case RoleClient:
		coord, _ := s.Coordinator()
		p.Publish.Allow = append([]string{coord + ".status", coord + ".status.>"}, read...)
		p.Subscribe.Allow = []string{inbox}
	default:
		return nil, fmt.Errorf("transport: unknown role %q", id.Role)
	}
	return p, nil
}
