package consensus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

func (s *State) submitJob(p SubmitJob) error {
	j, err := normalizeJob(p.Job)
	if err != nil {
		return err
	}
	if cur := s.Job; cur != nil {
		switch {
		case j.ID != cur.ID:
			// One cluster serves one job: replacing it would strand the
			// steps, checkpoints and results of the first.
			return invalid(TypeSubmitJob, "cluster already holds job %q, not %q", cur.ID, j.ID)
		case j.Version < cur.Version:
			return fmt.Errorf("%w: %s: version %d is older than the current %d", ErrConflict, TypeSubmitJob, j.Version, cur.Version)
		case j.Version == cur.Version:
			if j.SHA256 == cur.SHA256 && bytes.Equal(j.Spec, cur.Spec) {
				return nil // the same submission again
			}
			return fmt.Errorf("%w: %s: job %q version %d already holds a different spec", ErrConflict, TypeSubmitJob, j.ID, j.Version)
		}
	}
	s.Job = &j
	if s.Status == StatusNone {
		s.Status = StatusSubmitted
	}
	return nil
}

// normalizeJob validates a submitted job and puts Spec in compact form (and
// fills in SHA256) so that equal specs compare equal byte for byte.
func normalizeJob(j JobSpec) (JobSpec, error) {
	if j.ID == "" {
		return j, invalid(TypeSubmitJob, "empty job ID")
	}
	if j.Version < 1 {
		return j, invalid(TypeSubmitJob, "version %d, want ≥ 1", j.Version)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, j.Spec); err != nil || buf.Len() == 0 {
		return j, invalid(TypeSubmitJob, "spec is not valid JSON")
	}
	j.Spec = buf.Bytes()
	if j.SHA256 == "" {
		sum := sha256.Sum256(j.Spec)
		j.SHA256 = hex.EncodeToString(sum[:])
	} else if !isHexSHA256(j.SHA256) {
		return j, invalid(TypeSubmitJob, "sha256 %q is not 64 lowercase hex digits", j.SHA256)
	}
	return j, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *State) registerMember(index uint64, p RegisterMember) error {
	if p.ID == "" || p.Addr == "" {
		return invalid(TypeRegisterMember, "member needs an ID and an address (got %q, %q)", p.ID, p.Addr)
	}
	if _, known := s.Members[p.ID]; !known && len(s.Members) >= MaxMembers {
		return invalid(TypeRegisterMember, "the job has %d registered members already (at most %d)", len(s.Members), MaxMembers)
	}
	s.Members[p.ID] = Member{ID: p.ID, Addr: p.Addr, Registered: index, Standby: p.Standby}
	return nil
}

func (s *State) removeMember(p RemoveMember) error {
	if _, ok := s.Members[p.ID]; !ok {
		return invalid(TypeRemoveMember, "unknown member %q", p.ID)
	}
	if _, assigned := s.RangeOf(p.ID); assigned {
		return invalid(TypeRemoveMember, "member %q holds layers in epoch %d; reassign them first", p.ID, s.Assignment.Epoch)
	}
	delete(s.Members, p.ID)
	return nil
}

func (s *State) assign(epoch uint64, p Assign) error {
	a := p.Assignment
	if a.Epoch != epoch {
		return invalid(TypeAssign, "payload epoch %d differs from envelope epoch %d", a.Epoch, epoch)
	}
	if a.Epoch <= s.Assignment.Epoch {
		return fmt.Errorf("%w: %s: epoch %d must be greater than the current %d", ErrStaleEpoch, TypeAssign, a.Epoch, s.Assignment.Epoch)
	}
	if err := s.validateRanges(a.Ranges); err != nil {
		return err
	}
	s.Assignment = Assignment{Epoch: a.Epoch, Ranges: slices.Clone(a.Ranges)}
	return nil
}

// validateRanges checks that the ranges tile decoder layers [0, L) in order,
// each owned by a distinct registered member, with the embedding on the first
// shard and the head on the last (the pipeline's ends).
func (s *State) validateRanges(rs []Range) error {
	if len(rs) == 0 {
		return invalid(TypeAssign, "no ranges")
	}
	owners := map[string]bool{}
	next := 0
	for i, r := range rs {
		switch {
		case r.Shard == "":
			return invalid(TypeAssign, "range %d has no shard", i)
		case owners[r.Shard]:
			return invalid(TypeAssign, "shard %q owns more than one range", r.Shard)
		case r.From != next || r.To <= r.From:
			return invalid(TypeAssign, "range %d is [%d,%d), want [%d,>%d)", i, r.From, r.To, next, next)
		case r.Embed != (i == 0) || r.Head != (i == len(rs)-1):
			return invalid(TypeAssign, "range %d: embedding belongs to the first range and head to the last", i)
		}
		if _, ok := s.Members[r.Shard]; !ok {
			return invalid(TypeAssign, "shard %q is not a registered member", r.Shard)
		}
		owners[r.Shard] = true
		next = r.To
	}
	return nil
}

var validStatus = map[string]bool{
	StatusSubmitted: true, StatusRunning: true, StatusRecovering: true,
	StatusDone: true, StatusFailed: true,
}

func (s *State) setStatus(p SetStatus) error {
	if !validStatus[p.Status] {
		return invalid(TypeSetStatus, "unknown status %q", p.Status)
	}
	if p.Status == StatusFailed && p.Error == "" {
		return invalid(TypeSetStatus, "a failed status needs its reason")
	}
	if p.Status != StatusFailed && p.Class != "" {
		return invalid(TypeSetStatus, "a failure class on status %q", p.Status)
	}
	s.Status, s.Error, s.FailClass = p.Status, p.Error, p.Class
	return nil
}

func (s *State) setResult(p SetResult) error {
	if p.Key == "" {
		return invalid(TypeSetResult, "empty key")
	}
	if _, known := s.Results[p.Key]; !known && len(s.Results) >= MaxResults {
		return invalid(TypeSetResult, "the job has %d results already (at most %d)", len(s.Results), MaxResults)
	}
	s.Results[p.Key] = p.Value
	return nil
}

// retryJob reopens a failed job. Its steps and checkpoints stay: the
// leader resumes from the newest intact checkpoint under a new epoch.
func (s *State) retryJob(p RetryJob) error {
	switch {
	case s.Job == nil:
		return invalid(TypeRetryJob, "no job submitted")
	case p.JobID != s.Job.ID:
		return invalid(TypeRetryJob, "the cluster holds job %q, not %q", s.Job.ID, p.JobID)
	case s.Status != StatusFailed:
		return invalid(TypeRetryJob, "job %q is %s, only a failed job can be retried", s.Job.ID, s.Status)
	}
	s.Status, s.Error, s.FailClass = StatusSubmitted, "", ""
	s.Retries++
	return nil
}
