// Package shareddata is the test helper for the project's shared real-world
// data (models, text, zero-shot tasks) in ../shared/data, located by
// internal/datadir. Only tests import it (it imports testing).
//
// The data is never committed; tests that need it call Path, which skips the
// test when the data is absent on a developer machine but fails loudly when
// the CI environment variable is set, so CI can never silently skip it.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/internal/datadir"
)

// EnvVar overrides the location of the shared data directory.
const EnvVar = datadir.EnvVar

// Dir returns the shared data directory (see datadir.Dir).
func Dir() (string, error) { return datadir.Dir() }

// Path returns the absolute path of rel inside the shared data directory.
// When the file is missing the test is skipped, or fails if $CI is set.
func Path(t testing.TB, rel string) string {
	t.Helper()
	dir, err := Dir()
	if err == nil {
		p := filepath.Join(dir, rel)
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("required shared data %q is missing (CI is set): %v", rel, err)
	}
	t.Skipf("shared data %q not available: %v", rel, err)
	return ""
}
