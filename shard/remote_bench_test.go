package shard_test

import (
	"context"
	"testing"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/shardrpc"
)

// BenchmarkSearchStep compares a search step on stories260K with 3
// in-process shards and with 3 shard servers driven over an embedded NATS
// server (loopback). Each iteration is a full 6-step search from a reset
// state; ns/op is the whole run, ms/step only the steps (as the driver
// times them). The NATS runs also report bytes per step per shard: the
// threshold protocol (histogram and count_equal requests and replies), the
// pipe (activation and gradient chunks sent) and all control RPCs, and
// the mean size of one compressed histogram reply.
func BenchmarkSearchStep(b *testing.B) {
	for _, mode := range []string{job.ModeGlobal, job.ModeFrozen} {
		b.Run(mode+"/local", func(b *testing.B) {
			spec := benchSpec(b, mode)
			blobs, _ := newBlobs(b)
			_ = benchDriver(b, spec, localShards(b, storiesParts(b, spec, 3), blobs))
		})
		b.Run(mode+"/nats", func(b *testing.B) {
			spec := benchSpec(b, mode)
			c := newCluster(b, 3, shardrpc.ServeOptions{})
			rs := c.remotes(b, spec, storiesParts(b, spec, 3), 1, shardrpc.CallOptions{})
			before := natsCounters(c, rs)
			runs := benchDriver(b, spec, apis(rs))
			after := natsCounters(c, rs)
			per := float64(runs * spec.Steps * len(rs))
			b.ReportMetric(float64(after.threshold-before.threshold)/per, "threshold-B/step/shard")
			b.ReportMetric(float64(after.pipe-before.pipe)/per, "pipe-B/step/shard")
			b.ReportMetric(float64(after.rpc-before.rpc)/per, "rpc-B/step/shard")
			b.ReportMetric(float64(after.histReply-before.histReply)/float64(after.histCalls-before.histCalls), "hist-reply-B/round")
		})
	}
}

// benchSpec is the test search without intermediate checkpoints, so the
// step time is the step alone.
func benchSpec(b *testing.B, mode string) job.Spec {
	s := storiesSpec(b, mode)
	s.CheckpointEvery = 0
	return s
}

// benchDriver runs searches until the benchmark has enough and returns
// their number.
func benchDriver(b *testing.B, spec job.Spec, shards []shardrpc.API) int {
	var stepSeconds float64
	runs := 0
	for b.Loop() {
		runs++
		ledger, err := coordinator.OpenFileLedger("", spec.Hash())
		if err != nil {
			b.Fatal(err)
		}
		d := &coordinator.Driver{Spec: spec, Shards: shards, Ledger: ledger, Reset: true,
			OnStep: func(s coordinator.StepInfo) { stepSeconds += s.Seconds }}
		if _, err := d.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1e3*stepSeconds/float64(runs*spec.Steps), "ms/step")
	return runs
}

type counters struct{ threshold, pipe, rpc, histReply, histCalls uint64 }

func natsCounters(c *cluster, rs []*shardrpc.Remote) counters {
	var n counters
	for _, r := range rs {
		for m, st := range r.Stats() {
			bytes := st.ReqBytes + st.ReplyBytes
			n.rpc += bytes
			if m == shardrpc.MethodHistogram || m == shardrpc.MethodCountEqual {
				n.threshold += bytes
			}
			if m == shardrpc.MethodHistogram {
				n.histReply += st.ReplyBytes
				n.histCalls += st.Calls
			}
		}
	}
	for _, s := range c.servers {
		n.pipe += s.PipeStats().BytesSent
	}
	return n
}
