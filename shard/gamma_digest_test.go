package shard_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"sort"
	"testing"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/prune/statefile"
)

// gammaDigest hashes the Γ and first-step values of every part (tensor
// names in sorted order, little-endian bits), and the per-step facts (loss,
// ‖g‖, τ bits): what a search computes, independent of the image encoding.
func gammaDigest(t *testing.T, res runResult) string {
	h := sha256.New()
	var buf [8]byte
	for _, img := range res.gammas {
		d, err := statefile.Decode(img)
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(d.Tensors))
		for n := range d.Tensors {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			h.Write([]byte(n))
			tn := d.Tensors[n]
			for _, v := range tn.F32 {
				binary.LittleEndian.PutUint32(buf[:4], math.Float32bits(v))
				h.Write(buf[:4])
			}
			for _, v := range tn.I32 {
				binary.LittleEndian.PutUint32(buf[:4], uint32(v))
				h.Write(buf[:4])
			}
		}
	}
	steps := make([]int, 0, len(res.steps))
	for k := range res.steps {
		steps = append(steps, k)
	}
	sort.Ints(steps)
	for _, k := range steps {
		f := res.steps[k]
		for _, v := range []*float64{&f.LR, f.Loss, f.GradNorm, f.Tau} {
			bits := uint64(math.MaxUint64) // absent
			if v != nil {
				bits = math.Float64bits(*v)
			}
			binary.LittleEndian.PutUint64(buf[:], bits)
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestGammaDigestPinned pins the Γ of short stories260K searches in every
// mode (and the ProxSparse and non-default metric paths) to digests taken
// before the search engine's speed work: any change of the engine that
// moves a bit of Γ, of first-step, of a loss, a gradient norm or a τ fails
// here. Bitwise results are per matrix kernel and, for OpenBLAS, per the
// CPU core kernel it picks (its processor and OPENBLAS_CORETYPE: Haswell
// and SkylakeX give different last bits on the same machine), so each has
// its own digests; an unpinned combination skips, printing its digest. If
// a change must move bits, say so in its commit, re-pin, and re-verify the
// results table.
func TestGammaDigestPinned(t *testing.T) {
	pinned := map[string]map[string]string{
		"openblas/Haswell": {
			"global-stochria":         "54d509e1d24f6ba4a18cb0ab330d9a1ac69a944b3c9afe7f52b9e5a385cf9ab5",
			"global-stochria-3shards": "54d509e1d24f6ba4a18cb0ab330d9a1ac69a944b3c9afe7f52b9e5a385cf9ab5",
			"reference-ria":           "6b2a273af5cf3d9224f47e1b9dab101aa78ce55584638318da1d8d15577dbc56",
			"frozen-wanda":            "59e0b27cde20ce29bb8ad4fb8dc8673a0dc021cc2ae68684b0070157fadbdf80",
			"global-magnitude-prox":   "6f3cb085ed16745840ffaa34e257846947bf805ad659fa0e1a66656388f51f2f",
		},
		// Pinned after the speed work (which left the Haswell and gonum
		// digests unchanged): OpenBLAS 0.3.21 on this AMD EPYC without
		// OPENBLAS_CORETYPE.
		"openblas/Cooperlake": {
			"global-stochria":         "47ae7a21808ec7b4dee2ee45545a75f76bfe8ff1b60e97c7fd4d90f18b779a9f",
			"global-stochria-3shards": "47ae7a21808ec7b4dee2ee45545a75f76bfe8ff1b60e97c7fd4d90f18b779a9f",
			"reference-ria":           "dda3e665a96cb9921b65e097dfb390696256cb626c69d43d37a82a0579b57873",
			"frozen-wanda":            "1a3673eb74ed870e1dfd94e3ded526f88a11b882a2282a5f88129a27b0ba7a3e",
			"global-magnitude-prox":   "d333e3b1a50d108cf26655c23647f6da43140fdd15ac0bb6071b584e9b8ac8a2",
		},
		"gonum": {
			"global-stochria":         "aa669f34a46efd4bc08d5b453a8e8ddd8d51a53813fd693b72af19634e970176",
			"global-stochria-3shards": "aa669f34a46efd4bc08d5b453a8e8ddd8d51a53813fd693b72af19634e970176",
			"reference-ria":           "361e862eb3a2e2e3f71ca3183c413a298147052ca6f997c3ce73d9ef891196d5",
			"frozen-wanda":            "afaaeb2e6feffbf7abc1be7bb1e02ea78134195ec468ed9f470af0dc7af5a0ff",
			"global-magnitude-prox":   "74de6f0875e13f68a5fe00d3911f10e21c95b8f736596227c666ffdbc69cf26f",
		},
	}
	cases := []struct {
		name   string
		mode   string
		metric prune.Metric
		l2     float64
		shards int
	}{
		{"global-stochria", job.ModeGlobal, prune.MetricStochRIA, 0, 1},
		{"global-stochria-3shards", job.ModeGlobal, prune.MetricStochRIA, 0, 3},
		{"reference-ria", job.ModeReference, prune.MetricRIA, 0, 1},
		{"frozen-wanda", job.ModeFrozen, prune.MetricWanda, 0, 2},
		{"global-magnitude-prox", job.ModeGlobal, prune.MetricMagnitude, 0.001, 1},
	}
	kern := nn.ActiveKernel()
	if core := nn.BLASCore(); kern == "openblas" && core != "" {
		kern += "/" + core
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := storiesSpec(t, c.mode)
			spec.Metric, spec.Lambda2 = c.metric, c.l2
			spec.LR = 1e-2 // moves the weights enough for the AdamW path to matter
			got := gammaDigest(t, runLocal(t, spec, storiesParts(t, spec, c.shards)))
			want, ok := pinned[kern][c.name]
			if !ok {
				t.Skipf("no pinned digest for kernel %s; this run gives %s", kern, got)
			}
			if got != want {
				t.Fatalf("Γ digest %s, pinned %s (kernel %s): the search's bits moved", got, want, kern)
			}
		})
	}
}
