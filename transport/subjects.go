package transport

import (
	"fmt"
	"strings"
)

// DefaultSubjectPrefix is used when Subjects.Prefix is empty.
const DefaultSubjectPrefix = "unipruning"

// Subjects builds every NATS subject of one job. All names live here so that
// the coordinator, the shards and the tests cannot drift apart.
//
// Layout (P = Prefix, J = Job):
//
//	P.J.coord                      requests to the coordinator leader
//	P.J.ctl.<shard>                requests to one shard
//	P.J.hb.<id>                    heartbeats of one process
//	P.J.events                     broadcasts (e.g. committed steps)
//	P.J.stream.<kind>.<from>.<to>  tensor frames from stage <from> to <to>
//	P.J.stream.<kind>.<from>.<to>.ack  credits and acks going back
//
// Prefix may consist of several dot-separated tokens; every other part must be
// a single token of letters, digits, '_' or '-'.
type Subjects struct {
	Prefix string
	Job    string
}

// Coordinator is the subject the coordinator leader serves requests on.
func (s Subjects) Coordinator() (string, error) { return s.join("coord") }

// Control is the request subject of one shard.
func (s Subjects) Control(shardID string) (string, error) { return s.join("ctl", shardID) }

// Heartbeat is the subscription pattern matching every heartbeat of the
// job (P.J.hb.*); each process publishes on its own HeartbeatOf(id), so
// NATS permissions can bind a heartbeat to a credential.
func (s Subjects) Heartbeat() (string, error) {
	hb, err := s.join("hb")
	if err != nil {
		return "", err
	}
	return hb + ".*", nil
}

// HeartbeatOf is the subject process id publishes its heartbeats on.
func (s Subjects) HeartbeatOf(id string) (string, error) { return s.join("hb", id) }

// Events is the subject for job-wide broadcasts.
func (s Subjects) Events() (string, error) { return s.join("events") }

// Stream is the data subject of the tensor stream of the given kind ("act",
// "grad", ...) from one pipeline stage to another.
func (s Subjects) Stream(kind, fromStage, toStage string) (string, error) {
	return s.join("stream", kind, fromStage, toStage)
}

// StreamAck is the subject on which the receiver of Stream(kind, from, to)
// sends acks and credits. It equals DefaultAckSubject(Stream(kind, from, to)),
// which is what Sender and Receiver use when StreamConfig.AckSubject is empty.
func (s Subjects) StreamAck(kind, fromStage, toStage string) (string, error) {
	subj, err := s.Stream(kind, fromStage, toStage)
	if err != nil {
		return "", err
	}
	return DefaultAckSubject(subj), nil
}

// DefaultAckSubject is the ack subject paired with a stream's data subject.
func DefaultAckSubject(streamSubject string) string { return streamSubject + ".ack" }

func (s Subjects) join(tokens ...string) (string, error) {
	prefix := s.Prefix
	if prefix == "" {
		prefix = DefaultSubjectPrefix
	}
	for _, p := range strings.Split(prefix, ".") {
		if err := ValidateToken(p); err != nil {
			return "", fmt.Errorf("transport: subject prefix %q: %w", prefix, err)
		}
	}
	if err := ValidateToken(s.Job); err != nil {
		return "", fmt.Errorf("transport: job name: %w", err)
	}
	for _, t := range tokens {
		if err := ValidateToken(t); err != nil {
			return "", fmt.Errorf("transport: subject %s.%s.%s: %w",
				prefix, s.Job, strings.Join(tokens, "."), err)
		}
	}
	return prefix + "." + s.Job + "." + strings.Join(tokens, "."), nil
}

// ValidateToken reports whether tok can be used as one subject token: it must
// be non-empty, at most 128 bytes, and consist of ASCII letters, digits, '_'
// or '-'. This rules out the separator '.', the wildcards '*' and '>',
// whitespace and anything a shell or a URL would mangle.
func ValidateToken(tok string) error {
	if tok == "" {
		return fmt.Errorf("empty subject token")
	}
	if len(tok) > 128 {
		return fmt.Errorf("subject token %.20q... is %d bytes long (max 128)", tok, len(tok))
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("subject token %q has invalid character %q at byte %d "+
				"(allowed: letters, digits, '_', '-'; no spaces, dots or wildcards)", tok, c, i)
		}
	}
	return nil
}
