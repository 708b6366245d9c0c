// Package shareddata locates the project's shared real-world data (models,
// text, zero-shot tasks) that lives outside the repository in ../shared/data.
//
// The data is never committed; tests that need it call Path, which skips the
// test when the data is absent on a developer machine but fails loudly when
// the CI environment variable is set, so CI can never silently skip it.
package shareddata

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// EnvVar overrides the location of the shared data directory.
const EnvVar = "UNIPRUNING_DATA"

// Dir returns the shared data directory: $UNIPRUNING_DATA if set, otherwise
// the first "shared/data" found beside the current directory or any parent.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, nil
		}
		return "", errors.New(EnvVar + "=" + d + " is not a directory")
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared", "data")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand, nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return "", errors.New("shared data not found: expected ../shared/data beside the checkout (or set " + EnvVar + ")")
}

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
