package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakefileTagAfterSetup: `make demo` decides the OpenBLAS build tag
// after its setup step ran, so a machine where setup installs OpenBLAS
// builds with it (the Makefile's commands are replaced by echo and touch).
func TestMakefileTagAfterSetup(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	lib := filepath.Join(t.TempDir(), "libopenblas.so")
	run := func(target string) string {
		cmd := exec.Command(mk, "-s", "-C", "../..", target, "GO=echo go", "OPENBLAS_LIBS="+lib,
			"INSTALL_OPENBLAS=touch "+lib, "DEMO=echo demo", "BIN=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	if out := run("build"); strings.Contains(out, "-tags openblas") {
		t.Fatalf("without OpenBLAS, make build used the tag:\n%s", out)
	}
	out := run("demo")
	if !strings.Contains(out, "go build -tags openblas") {
		t.Fatalf("make demo installed OpenBLAS but built without it:\n%s", out)
	}
}
