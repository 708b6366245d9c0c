// Package sysmem reports what the operating system says about this
// process's memory: its peak resident set size, and how much memory it may
// use at most (the machine's RAM, or a smaller cgroup limit when the process
// runs in a container or a systemd scope). Benchmarks, status reports and the
// up-front "needs X GiB, the machine offers Y" checks use it.
//
// Linux only in substance: elsewhere PeakRSS falls back to getrusage where
// the platform has it and MemoryLimit returns an error.
package sysmem

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// unlimitedV1 is the threshold above which a cgroup v1 limit means "no
// limit": the kernel reports LONG_MAX rounded down to a page multiple.
const unlimitedV1 = uint64(1) << 62

// PeakRSS returns the peak resident set size of this process in bytes (the
// kernel's high-water mark VmHWM), falling back to getrusage's ru_maxrss.
func PeakRSS() (uint64, error) {
	if b, err := statusField("/proc/self/status", "VmHWM:"); err == nil {
		return b, nil
	}
	return rusageMaxRSS()
}

// MemoryLimit returns the memory this process may use at most, in bytes,
// and a short description of where the figure comes from: the smallest of
// the machine's RAM (/proc/meminfo MemTotal) and every cgroup v1 or v2
// memory limit on the path from this process's cgroup up to the root.
func MemoryLimit() (uint64, string, error) {
	return memoryLimit("/")
}

// memoryLimit is MemoryLimit with /proc and /sys looked up under root, so
// tests can lay out a fake tree.
func memoryLimit(root string) (uint64, string, error) {
	total, err := statusField(filepath.Join(root, "proc/meminfo"), "MemTotal:")
	if err != nil {
		return 0, "", fmt.Errorf("sysmem: machine memory: %w", err)
	}
	limit, source := total, "machine RAM (/proc/meminfo MemTotal)"
	cg, file, err := cgroupLimit(root)
	if err == nil && cg < limit {
		limit, source = cg, "cgroup limit ("+file+")"
	}
	return limit, source, nil
}

// statusField reads a "Key:  N kB" line from a /proc file (status, meminfo)
// and returns N in bytes.
func statusField(file, key string) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fields := strings.Fields(line[len(key):])
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", file, key, err)
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s line", file, key)
}

// mount is one cgroup hierarchy as mounted: where it is, which cgroup path
// its root stands for, and whether it is the unified (v2) hierarchy.
type mount struct {
	dir, root string
	v2        bool
}

// cgroupLimit returns the smallest memory limit set on this process's
// cgroup or any ancestor, and the file that set it.
func cgroupLimit(root string) (uint64, string, error) {
	mounts, err := cgroupMounts(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return 0, "", err
	}
	paths, err := cgroupPaths(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, "", err
	}
	best, bestFile := uint64(math.MaxUint64), ""
	for _, m := range mounts {
		p, ok := paths["memory"]
		name, unlimited := "memory.limit_in_bytes", func(v uint64) bool { return v >= unlimitedV1 }
		if m.v2 {
			p, ok = paths[""]
			name, unlimited = "memory.max", func(uint64) bool { return false }
		}
		if !ok {
			continue
		}
		dir := filepath.Join(root, m.dir, relTo(p, m.root))
		top := filepath.Join(root, m.dir)
		for {
			v, err := readLimit(filepath.Join(dir, name))
			if err == nil && !unlimited(v) && v < best {
				best, bestFile = v, strings.TrimPrefix(filepath.Join(dir, name), filepath.Clean(root))
				if !strings.HasPrefix(bestFile, "/") {
					bestFile = "/" + bestFile
				}
			}
			if dir == top || len(dir) < len(top) {
				break
			}
			dir = filepath.Dir(dir)
		}
	}
	if bestFile == "" {
		return 0, "", errors.New("sysmem: no cgroup memory limit")
	}
	return best, bestFile, nil
}

// relTo returns cgroup path p relative to a mount's root; a path outside
// the root (a cgroup namespace shows "/") maps to the mount itself.
func relTo(p, root string) string {
	p, root = path.Clean(p), path.Clean(root)
	if root == "/" {
		return p
	}
	if p == root {
		return "/"
	}
	if strings.HasPrefix(p, root+"/") {
		return p[len(root):]
	}
	return "/"
}

// readLimit reads a cgroup limit file: a byte count, or "max" (v2, no
// limit, reported as an error so the caller skips it).
func readLimit(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, errors.New("no limit")
	}
	return strconv.ParseUint(s, 10, 64)
}

// cgroupMounts lists the cgroup v2 mount and any v1 mount carrying the
// memory controller, from a mountinfo file.
func cgroupMounts(file string) ([]mount, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		switch fstype := fields[sep+1]; {
		case fstype == "cgroup2":
			out = append(out, mount{dir: fields[4], root: fields[3], v2: true})
		case fstype == "cgroup" && hasOption(fields[sep+3], "memory"):
			out = append(out, mount{dir: fields[4], root: fields[3]})
		}
	}
	return out, sc.Err()
}

func hasOption(opts, name string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == name {
			return true
		}
	}
	return false
}

// cgroupPaths maps each v1 controller (and "" for v2) to this process's
// cgroup path, from /proc/self/cgroup.
func cgroupPaths(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}
