// Package chaos holds the fault-injection suites of the cluster runtime
// (DESIGN §3.5). They are behind the build tag "chaos" and run with
//
//	go test -tags chaos -count=1 -timeout 40m -v ./chaos/
//
// (make chaos). Every test builds the unipruning binary, starts NATS, three
// coordinator replicas and three shards as separate processes on loopback
// (or as containers, when docker is usable), runs the stories260K search
// (modes global and frozen), injects a fault mid-search — kill -9 of a
// shard with a replacement, kill -9 of the Raft leader, a NATS server
// restart, a frozen (SIGSTOP) shard, docker kill / network disconnect /
// stop — and checks that the Γ store is bitwise identical to a one-process
// reference run (`unipruning search --shards 3` with the same spec).
//
// Environment:
//
//	CHAOS_STEPS    search steps (default 32)
//	CHAOS_KEEP     a directory: copy each test's logs there
//	CHAOS_DOCKER=0 skip the container suite even when docker works
//	UNIPRUNING_DATA  the shared data directory (default: ../shared/data)
package chaos
