// Package transport is unipruning's messaging layer and the only package that
// imports nats.go and nats-server. Everything above it (coordinator, shards,
// the CLI) talks in terms of this package's small API:
//
//   - Subjects: every subject name the project uses, validated in one place.
//   - StartServer: an embedded NATS server for the one-process mode and the
//     `unipruning nats` role.
//   - Connect / Conn: a client connection with reconnect logging.
//   - Handle / Call (and the JSON helpers): request-reply with typed remote
//     errors, timeouts and retries.
//   - Sender / Receiver: reliable, ordered, flow-controlled streams of float32
//     tensor frames between neighbouring pipeline stages.
//   - BlobStore: content-addressed checkpoint blobs on a file system or in a
//     JetStream Object Store.
//   - StartHeartbeat / WatchHeartbeats: liveness.
//
// Plain NATS delivery is at most once, and a shard's connection may be cut and
// restored in the middle of a step, so the stream layer adds its own
// sequencing, acknowledgements, retransmission and receiver-granted credits on
// top of it; see Sender and Receiver.
package transport
