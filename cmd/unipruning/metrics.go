package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unipruning/unipruning/shardrpc"
)

// serveMetrics exposes reg on addr's /metrics ("" = off).
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Error("metrics endpoint stopped", "addr", addr, "err", err)
		}
	}()
}

// registerShardMetrics exposes a shard server's state and pipe counters.
func registerShardMetrics(reg *prometheus.Registry, srv *shardrpc.Server) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("unipruning_shard_epoch", "Assignment epoch the shard serves.", func() float64 { return float64(srv.Status().Epoch) })
	gauge("unipruning_shard_step", "Last step whose Γ the shard applied.", func() float64 { return float64(srv.Status().Step) })
	gauge("unipruning_shard_layers", "Decoder layers the shard owns.", func() float64 {
		p := srv.Status().Part
		return float64(p.To - p.From)
	})
	// The pipe is rebuilt at every epoch, so its counters are per epoch.
	gauge("unipruning_shard_pipe_bytes_sent", "Activation/gradient bytes sent to neighbours in the current epoch.", func() float64 { return float64(srv.PipeStats().BytesSent) })
	gauge("unipruning_shard_pipe_bytes_received", "Activation/gradient bytes received in the current epoch.", func() float64 { return float64(srv.PipeStats().BytesReceived) })
	gauge("unipruning_shard_pipe_retransmits", "Frames retransmitted on the pipe in the current epoch.", func() float64 { return float64(srv.PipeStats().Retransmits) })
}
