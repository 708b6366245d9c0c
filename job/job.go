package job

import (
	"encoding/json"
)

// Job is what a cluster runs: a search spec spread over Shards shards.
// It is the opaque spec stored in Raft (consensus.JobSpec.Spec).
type Job struct {
	ID     string `json:"id"`
	Spec   Spec   `json:"spec"`
	Shards int    `json:"shards"`
}

// Validate checks the job.
func (j *Job) Validate() error {
	if j.ID == "" {
		return Invalidf("job has no id")
	}
	if j.Shards < 1 {
		return Invalidf("job needs at least one shard (got %d)", j.Shards)
	}
	j.Spec.Defaults()
	return j.Spec.Validate()
}

// Parse reads a job from JSON.
func Parse(b []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, Invalidf("job: %w", err)
	}
	return &j, j.Validate()
}
