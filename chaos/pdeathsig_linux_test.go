//go:build chaos && linux

package chaos

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the child get SIGKILL when the test process dies (a
// `go test -timeout` panic, a killed run), so no cluster process outlives it.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
