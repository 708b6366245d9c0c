//go:build chaos

package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/job"
)

// TestConfigs: every job in configs/ parses and validates; the stories260K
// jobs name files that exist (relative to the repository root) and are the
// chaos workload (32+ steps, a checkpoint every 4, 3 shards).
func TestConfigs(t *testing.T) {
	root := repoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "configs", "job-*.json"))
	if len(files) < 3 {
		t.Fatalf("expected at least 3 job files in configs/, found %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := job.Parse(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		t.Logf("%s: job %s, mode %s, %d steps, seqlen %d, %d shards", filepath.Base(f), j.ID, j.Spec.Mode, j.Spec.Steps, j.Spec.Seqlen, j.Shards)
		if !strings.Contains(f, "stories260k") {
			continue
		}
		if j.Spec.Steps < 32 || j.Spec.CheckpointEvery != 4 || j.Shards != 3 {
			t.Errorf("%s: want 32+ steps, checkpoint_every 4, 3 shards", filepath.Base(f))
		}
		for _, p := range []string{j.Spec.Model, j.Spec.Tokenizer, j.Spec.CalibPath} {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
		}
	}
}
