package coordinator

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the coordinator's Prometheus metrics.
type Metrics struct {
	Steps      prometheus.Counter
	StepSecs   prometheus.Histogram
	Loss       prometheus.Gauge
	Tau        prometheus.Gauge
	GradNorm   prometheus.Gauge
	Step       prometheus.Gauge
	Epoch      prometheus.Gauge
	Leader     prometheus.Gauge
	PeakRSS    *prometheus.GaugeVec
	Recoveries prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, e.g. in tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Steps:      prometheus.NewCounter(prometheus.CounterOpts{Name: "unipruning_coordinator_steps_total", Help: "Search steps completed by this replica while leader."}),
		StepSecs:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "unipruning_coordinator_step_seconds", Help: "Wall time of one search step.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		Loss:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "unipruning_search_loss", Help: "Mean next-token NLL of the last step's window."}),
		Tau:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "unipruning_search_tau", Help: "Model-wide threshold of the last step."}),
		GradNorm:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "unipruning_search_grad_norm", Help: "Global gradient norm of the last step (before clipping)."}),
		Step:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "unipruning_search_step", Help: "Last completed step."}),
		Epoch:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "unipruning_coordinator_epoch", Help: "Current assignment epoch."}),
		PeakRSS:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "unipruning_shard_peak_rss_bytes", Help: "Peak resident set size of each shard's process, as reported with the last step."}, []string{"shard"}),
		Leader:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "unipruning_coordinator_leader", Help: "1 while this replica leads."}),
		Recoveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "unipruning_coordinator_recoveries_total", Help: "Attempts aborted and recovered (shard loss, errors)."}),
	}
	if reg != nil {
		reg.MustRegister(m.Steps, m.StepSecs, m.Loss, m.Tau, m.GradNorm, m.Step, m.Epoch, m.Leader, m.Recoveries, m.PeakRSS)
	}
	return m
}

func (m *Metrics) observe(s StepInfo) {
	m.Steps.Inc()
	m.StepSecs.Observe(s.Seconds)
	m.Loss.Set(s.Loss)
	m.Step.Set(float64(s.Step))
	if !math.IsNaN(s.Tau) {
		m.Tau.Set(s.Tau)
	}
	m.GradNorm.Set(s.GradNorm)
	for i, b := range s.PeakRSS {
		if b > 0 {
			m.PeakRSS.WithLabelValues(strconv.Itoa(i)).Set(float64(b))
		}
	}
}
