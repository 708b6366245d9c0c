package sysmem

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestPeakRSSSeesTouchedMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux's")
	}
	before, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	const n = 256 << 20
	buf := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		buf[i] = 1
	}
	after, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(buf)
	if after < before+n/2 {
		t.Fatalf("peak RSS %d after touching %d bytes, %d before", after, n, before)
	}
	ru, err := rusageMaxRSS()
	if err != nil {
		t.Fatal(err)
	}
	// getrusage and VmHWM measure the same high-water mark.
	if d := int64(ru) - int64(after); d < -(16<<20) || d > 16<<20 {
		t.Fatalf("getrusage says %d, VmHWM %d", ru, after)
	}
}

func TestMemoryLimitOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	lim, src, err := MemoryLimit()
	if err != nil {
		t.Fatal(err)
	}
	total, err := statusField("/proc/meminfo", "MemTotal:")
	if err != nil {
		t.Fatal(err)
	}
	if lim == 0 || lim > total || src == "" {
		t.Fatalf("limit %d (%s), MemTotal %d", lim, src, total)
	}
}

// fakeTree writes files (relative path → content) under a temporary root.
func fakeTree(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo = "MemTotal:       24683652 kB\nMemFree:        24332796 kB\n"

const v1Mountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestMemoryLimitCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   uint64
		source string
	}{{
		name: "no cgroup limit: machine RAM",
		files: map[string]string{
			"proc/meminfo":        "MemTotal: 1000 kB\n",
			"proc/self/mountinfo": v1Mountinfo,
			"proc/self/cgroup":    "4:memory:/a/b\n1:cpu:/\n0::/\n",
			"sys/fs/cgroup/memory/a/b/memory.limit_in_bytes": "9223372036854771712\n",
		},
		want: 1000 * 1024, source: "machine RAM",
	}, {
		name: "v1 limit on an ancestor",
		files: map[string]string{
			"proc/meminfo":        meminfo,
			"proc/self/mountinfo": v1Mountinfo,
			"proc/self/cgroup":    "4:memory:/a/b\n0::/\n",
			"sys/fs/cgroup/memory/a/b/memory.limit_in_bytes": "9223372036854771712\n",
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes":   "6442450944\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":     "9223372036854771712\n",
		},
		want: 6 << 30, source: "/sys/fs/cgroup/memory/a/memory.limit_in_bytes",
	}, {
		name: "v2 memory.max, max above it",
		files: map[string]string{
			"proc/meminfo":        meminfo,
			"proc/self/mountinfo": "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":    "0::/system.slice/x.scope\n",
			"sys/fs/cgroup/system.slice/x.scope/memory.max": "2147483648\n",
			"sys/fs/cgroup/system.slice/memory.max":         "max\n",
		},
		want: 2 << 30, source: "/sys/fs/cgroup/system.slice/x.scope/memory.max",
	}, {
		name: "container: namespaced path, mount root is the container's cgroup",
		files: map[string]string{
			"proc/meminfo":             meminfo,
			"proc/self/mountinfo":      "29 23 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
		},
		want: 1 << 30, source: "/sys/fs/cgroup/memory.max",
	}, {
		name: "limit above the machine's RAM: machine RAM",
		files: map[string]string{
			"proc/meminfo":             "MemTotal: 1024 kB\n",
			"proc/self/mountinfo":      "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
		},
		want: 1 << 20, source: "machine RAM",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeTree(t, tc.files)
			got, src, err := memoryLimit(root)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || !strings.Contains(src, tc.source) {
				t.Fatalf("got %d from %q, want %d from %q", got, src, tc.want, tc.source)
			}
		})
	}
}

func TestMemoryLimitWithoutProc(t *testing.T) {
	if _, _, err := memoryLimit(t.TempDir()); err == nil {
		t.Fatal("no error without /proc/meminfo")
	}
}
