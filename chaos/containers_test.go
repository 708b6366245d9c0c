//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
)

// The container suite runs deploy/compose.yaml (FROM scratch image of the
// static binary built by the test) and injects faults with the docker CLI:
// docker kill of a shard, docker network disconnect / connect of a shard,
// docker stop and docker kill of the Raft leader coordinator.

var (
	imageMu  sync.Mutex
	imageTag string
)

// composeCmd is "docker compose" when the plugin works, else docker-compose.
func composeCmd(t *testing.T) []string {
	t.Helper()
	if os.Getenv("CHAOS_DOCKER") == "0" {
		t.Skip("CHAOS_DOCKER=0")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker not installed")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skipf("docker daemon not usable: %v", err)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Skip("neither docker compose nor docker-compose")
	return nil
}

// image builds the FROM scratch image from the test's static binary in a
// private build context (the repository's Dockerfile and rootfs skeleton).
func image(t *testing.T) string {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	if imageTag != "" {
		return imageTag
	}
	root := repoRoot(t)
	bin := binary(t)
	ctx := filepath.Join(tmpRoot, "docker-context")
	steps := [][]string{
		{"mkdir", "-p", filepath.Join(ctx, "bin"), filepath.Join(ctx, "deploy", "docker")},
		{"cp", filepath.Join(root, "Dockerfile"), filepath.Join(root, ".dockerignore"), ctx},
		{"cp", bin, filepath.Join(ctx, "bin", "unipruning-static")},
		{"cp", "-r", filepath.Join(root, "deploy", "docker", "rootfs"), filepath.Join(ctx, "deploy", "docker")},
	}
	for _, s := range steps {
		if b, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", s, err, b)
		}
	}
	tag := fmt.Sprintf("unipruning:chaos-%d", os.Getpid())
	start := time.Now()
	if b, err := exec.Command("docker", "build", "-q", "-t", tag, ctx).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, b)
	}
	t.Logf("built image %s in %v", tag, time.Since(start).Round(time.Millisecond))
	imageTag = tag
	return tag
}

// composeProject is one compose deployment.
type composeProject struct {
	t        *testing.T
	compose  []string
	name     string
	env      []string
	natsURL  string
	creds    string // --auth directory of the project
	bin      string
	cid      map[string]string
	logs     string // docker logs are saved here at the end
	out      string
	finished bool
}

func newComposeProject(t *testing.T, j job.Job) *composeProject {
	t.Helper()
	compose := composeCmd(t)
	img := image(t)
	dataDir, err := shareddata.Dir()
	if err != nil {
		t.Skip(err)
	}
	dataDir, _ = filepath.Abs(dataDir)
	// Inside the containers the data is at /shared/data and the working
	// directory is /app: the job names it ../shared/data/...
	cj := j
	for _, p := range []*string{&cj.Spec.Model, &cj.Spec.Tokenizer, &cj.Spec.CalibPath} {
		rel, err := filepath.Rel(dataDir, filepath.Join(repoRoot(t), *p))
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("%s is not inside the shared data directory %s", *p, dataDir)
		}
		*p = "../shared/data/" + filepath.ToSlash(rel)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "configs")
	os.MkdirAll(cfg, 0o755)
	b, _ := json.MarshalIndent(cj, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg, "job.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Per-role credentials as deploy/compose-run.sh makes them: readable by
	// the containers' uid, the private temp dir keeps others out.
	creds := filepath.Join(dir, "creds")
	if b, err := exec.Command(binary(t), "creds", "--out", creds, "--cluster", "chaos", "--shard-ids", "s0,s1,s2",
		"--hosts", "nats,c1,c2,c3,localhost,127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("creds: %v\n%s", err, b)
	}
	if ents, err := os.ReadDir(creds); err == nil {
		for _, e := range ents {
			os.Chmod(filepath.Join(creds, e.Name()), 0o644)
		}
	}
	port := freePorts(t, 1)[0]
	p := &composeProject{t: t, compose: compose, bin: binary(t), creds: creds,
		name:    fmt.Sprintf("upchaos%d%d", os.Getpid(), time.Now().UnixNano()%100000),
		natsURL: fmt.Sprintf("nats://127.0.0.1:%d", port),
		logs:    filepath.Join(dir, "logs"), out: filepath.Join(dir, "out"),
		env: append(os.Environ(), "UNIPRUNING_IMAGE="+img, "JOB=job.json", "CONFIG_DIR="+cfg,
			"DATA_DIR="+dataDir, fmt.Sprintf("NATS_PORT=%d", port), "CLUSTER=chaos", "CREDS_DIR="+creds)}
	os.MkdirAll(p.logs, 0o755)
	t.Cleanup(p.down)
	p.run(2*time.Minute, "up", "-d")
	p.cid = map[string]string{}
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+p.name,
		"--format", `{{.Label "com.docker.compose.service"}} {{.ID}}`).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			p.cid[f[0]] = f[1]
		}
	}
	for _, s := range []string{"nats", "c1", "c2", "c3", "s0", "s1", "s2"} {
		if p.cid[s] == "" {
			t.Fatalf("no container for service %s (%q)", s, out)
		}
	}
	return p
}

func (p *composeProject) run(timeout time.Duration, args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append([]string{}, p.compose[1:]...), append([]string{"-p", p.name, "-f", filepath.Join(repoRoot(p.t), "deploy", "compose.yaml")}, args...)...)
	cmd := exec.CommandContext(ctx, p.compose[0], full...)
	cmd.Env = p.env
	b, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("%s %v: %v\n%s", p.compose[0], args, err, tail(b, 20))
	}
	return string(b)
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, b)
	}
	return strings.TrimSpace(string(b))
}

// saveLogs writes every container's log to p.logs/<service>.log.
func (p *composeProject) saveLogs() {
	for s, id := range p.cid {
		b, _ := exec.Command("docker", "logs", id).CombinedOutput()
		os.WriteFile(filepath.Join(p.logs, s+".log"), b, 0o644)
	}
}

func (p *composeProject) down() {
	p.saveLogs()
	if p.t.Failed() {
		for _, s := range []string{"c1", "c2", "c3", "s0", "s1", "s2"} {
			b, _ := os.ReadFile(filepath.Join(p.logs, s+".log"))
			p.t.Logf("---- %s (last lines)\n%s", s, tail(b, 15))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Remove the containers first (also any the test restarted meanwhile),
	// then the network and volumes through compose.
	ids := make([]string, 0, len(p.cid))
	for _, id := range p.cid {
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		exec.CommandContext(ctx, "docker", append([]string{"rm", "-f", "-v"}, ids...)...).Run()
	}
	args := append(append([]string{}, p.compose[1:]...), "-p", p.name, "-f", filepath.Join(repoRoot(p.t), "deploy", "compose.yaml"), "down", "-v", "--remove-orphans", "-t", "5")
	cmd := exec.CommandContext(ctx, p.compose[0], args...)
	cmd.Env = p.env
	if b, err := cmd.CombinedOutput(); err != nil {
		p.t.Errorf("compose down: %v\n%s", err, b)
	}
}

func (p *composeProject) status(ctx context.Context) (coordinator.Status, error) {
	return clusterStatus(ctx, p.bin, p.natsURL, "--auth", p.creds)
}

// doneLogged: a coordinator reported the replicated status "done".
func (p *composeProject) doneLogged() bool {
	for _, c := range []string{"c1", "c2", "c3"} {
		b, _ := exec.Command("docker", "logs", p.cid[c]).CombinedOutput()
		if reDone.Match(b) {
			return true
		}
	}
	return false
}

func (p *composeProject) waitStep(ctx context.Context, k int) coordinator.Status {
	p.t.Helper()
	for {
		if st, err := p.status(ctx); err == nil && st.Step >= k && st.Leader != "" {
			return st
		}
		if p.doneLogged() {
			p.t.Fatalf("the job ended before step %d", k)
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("step %d not reached: %v", k, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitDone waits for the job and copies the Γ store out of the volume.
func (p *composeProject) waitDone(ctx context.Context) {
	p.t.Helper()
	for !p.doneLogged() {
		select {
		case <-ctx.Done():
			st, err := p.status(context.Background())
			p.t.Fatalf("job not done: %v (status %+v, %v)", ctx.Err(), st, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	docker(p.t, "cp", p.cid["c1"]+":/out/run", p.out)
	p.saveLogs()
}

func (p *composeProject) network() string {
	return docker(p.t, "inspect", "-f", `{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}`, p.cid["s1"])
}

// TestContainers: the compose deployment under docker faults.
func TestContainers(t *testing.T) {
	composeCmd(t)
	t.Cleanup(func() {
		imageMu.Lock()
		defer imageMu.Unlock()
		if imageTag != "" {
			exec.Command("docker", "rmi", "-f", imageTag).Run()
			imageTag = ""
		}
	})
	cases := []struct {
		mode, fault string
	}{
		{"global", "none"},
		{"global", "kill-shard"},
		{"global", "disconnect-shard"},
		{"global", "stop-leader"},
		{"frozen", "kill-leader"},
		{"frozen", "disconnect-shard"},
	}
	for _, tc := range cases {
		t.Run(tc.mode+"/"+tc.fault, func(t *testing.T) {
			j, ref, ctx := setup(t, tc.mode)
			p := newComposeProject(t, j)
			var at time.Time
			notice := shardLost
			if tc.fault != "none" {
				st := p.waitStep(ctx, faultStep)
				switch tc.fault {
				case "kill-shard":
					docker(t, "kill", p.cid["s1"])
					at = time.Now()
					// docker kill is a manual stop: the restart policy leaves it; start
					// it again (same id, new incarnation).
					time.Sleep(time.Second)
					docker(t, "start", p.cid["s1"])
				case "disconnect-shard":
					net := p.network()
					docker(t, "network", "disconnect", net, p.cid["s1"])
					at = time.Now()
					time.Sleep(5 * time.Second)
					docker(t, "network", "connect", "--alias", "s1", net, p.cid["s1"])
				case "stop-leader":
					at = time.Now()
					docker(t, "stop", "-t", "10", p.cid[st.Leader])
					notice = "leading"
				case "kill-leader":
					docker(t, "kill", p.cid[st.Leader])
					at = time.Now()
					notice = "leading"
					// Once another replica leads, start the killed one again: it
					// rejoins as a follower.
					for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !p.doneLogged(); {
						if s, err := p.status(ctx); err == nil && s.Leader != "" && s.Leader != st.Leader {
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
					docker(t, "start", p.cid[st.Leader])
				}
				t.Logf("fault %s (leader was %s) after step %d", tc.fault, st.Leader, st.Step)
			}
			p.waitDone(ctx)
			sameSpec := dataRel(t, "models/stories260K/stories260K.bin") == "../shared/data/models/stories260K/stories260K.bin"
			sameGamma(t, ref, p.out, sameSpec)
			if tc.fault != "none" {
				r := recoveryIn(eventsIn(p.logs, "c"), at, notice)
				t.Logf("RECOVERY containers %s (%s): %v", tc.fault, tc.mode, r)
				if r.replanned < 0 {
					t.Errorf("the fault caused no new epoch")
				}
			}
		})
	}
}
