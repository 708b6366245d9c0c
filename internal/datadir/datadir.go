// Package datadir locates the project's shared real-world data (models,
// text, zero-shot tasks) that lives outside the repository in
// ../shared/data. The command uses it for its bundled defaults; tests use
// internal/shareddata, which adds the skip-or-fail rule on top.
package datadir

import (
	"errors"
	"os"
	"path/filepath"
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
