// Package compressed writes and reads the sparse checkpoint formats of the
// compressed-tensors library (vllm-project/compressed-tensors), and the
// sparsity metadata llm-compressor puts in config.json, so a pruned model
// is recognised as sparse by the tools that read them.
//
// What this follows, exactly (compressed-tensors tag 0.14.0, commit
// d96634b9, the last release that ships the sparse compressors; 0.15.0
// removed them as "legacy formats", and vLLM dropped its Sparse24 kernels in
// vllm-project/vllm#36799, so current vLLM loads the "dense" format and
// refuses compressed 2:4 checkpoints):
//
//   - config/base.py: CompressionFormat names "dense", "sparse-bitmask",
//     "sparse-24-bitmask"; SparsityStructure "2:4", "unstructured";
//     SparsityCompressionConfig fields format, targets, ignore,
//     global_sparsity, sparsity_structure, plus the RegistryMixin class
//     field registry_requires_subclass (false), which model_dump emits.
//   - base.py and ModelCompressor.update_config: config.json gets
//     "quantization_config": {"version", "quant_method": "compressed-tensors",
//     "sparsity_config": {…}, "transform_config": {}}, written with
//     json.dump(indent=2, sort_keys=True).
//   - compressors/sparse_compressors/sparse_bitmask.py (BitmaskCompressor):
//     a weight "<module>.weight" becomes "<module>.shape" (int64 [2]),
//     "<module>.compressed" (the non-zero values, row-major, 1-D, the
//     weight's dtype), "<module>.bitmask" (uint8 [rows, ceil(cols/8)]) and
//     "<module>.row_offsets" (int64 [rows], the index in compressed where
//     each row starts); "non-zero" is tensor != 0, so -0.0 counts as zero.
//   - compressors/sparse_compressors/sparse_24_bitmask.py: "<module>.shape"
//     (int64 [2, 1]), "<module>.compressed" ([rows, cols/2], the 2 kept
//     values of every group of 4 consecutive elements, row-major),
//     "<module>.bitmask" (uint8 [rows, ceil(cols/8)]); the kept positions are
//     the top-2 |values| of each group (get_24_bytemasks).
//   - utils/helpers.py pack_bitmasks: numpy.packbits(axis=-1,
//     bitorder="little"): bit j%8 of byte j/8 of a row is element j.
//   - llm-compressor (before its commit ed2d7f60 removed the sparse path),
//     SparsityConfigMetadata.from_pretrained and
//     transformers/compression/helpers.py: global_sparsity = zeros / total
//     over all parameters; a Linear module is a compression target when its
//     weight is ≥ 49% zeros (compared in float32) and follows the structure
//     (2:4: ≥ 2 zeros in every group of 4 of the flattened weight); targets
//     and ignore are reduced per module type: ["Linear"] and the names of the
//     Linear modules that do not qualify (lm_head among them) when at least
//     half of them qualify, else the names of those that do and those that
//     do not.
package compressed

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Format names (compressed-tensors CompressionFormat).
const (
	Dense           = "dense"
	SparseBitmask   = "sparse-bitmask"
	Sparse24Bitmask = "sparse-24-bitmask"
)

// Sparsity structures (compressed-tensors SparsityStructure).
const (
	Unstructured = "unstructured"
	TwoFour      = "2:4"
)

// Version is the compressed-tensors release whose definitions this package
// follows; it is what config.json's quantization_config.version records.
const Version = "0.14.0"

// QuantMethod is quantization_config.quant_method for compressed-tensors.
const QuantMethod = "compressed-tensors"

// Threshold is llm-compressor's SPARSITY_THRESHOLD: a module whose weight
// has fewer zeros is not a sparse-compression target.
const Threshold float32 = 0.49

// Structure is the sparsity_structure of an N:M pattern (n, m > 0) or of
// unstructured pruning (m = 0). SparsityStructure knows only 2:4 among N:M
// patterns, so any other pattern is described as unstructured (as
// llm-compressor's structure inference would find it).
func Structure(n, m int) string {
	if n == 2 && m == 4 {
		return TwoFour
	}
	return Unstructured
}

// FormatFor is the compressed format of a structure: sparse-24-bitmask for
// 2:4, sparse-bitmask otherwise.
func FormatFor(structure string) string {
	if structure == TwoFour {
		return Sparse24Bitmask
	}
	return SparseBitmask
}

// ElemSize returns the bytes per element of a float dtype name
// (safetensors spelling), 0 if it is not F64, F32, F16 or BF16.
func ElemSize(dtype string) int {
	switch dtype {
	case "F64":
		return 8
	case "F32":
		return 4
	case "F16", "BF16":
		return 2
	}
	return 0
}

// isZero reports whether the element at raw[i*size:] is ±0 (tensor == 0).
func isZero(raw []byte, i, size int) bool {
	switch size {
	case 2:
		return binary.LittleEndian.Uint16(raw[2*i:])&0x7fff == 0
	case 4:
		return binary.LittleEndian.Uint32(raw[4*i:])&0x7fffffff == 0
	default:
		return binary.LittleEndian.Uint64(raw[8*i:])&math.MaxInt64 == 0
	}
}

// Stats are the zero counts of one tensor.
type Stats struct {
	Zeros, Numel int64
	// Follows24: every group of 4 consecutive elements (of the flattened
	// tensor, whose size is a multiple of 4) has at least 2 zeros.
	Follows24 bool
}

// Count computes the stats of raw, a little-endian tensor of elements of
// size bytes.
func Count(raw []byte, size int) Stats {
	n := len(raw) / size
	s := Stats{Numel: int64(n), Follows24: n%4 == 0}
	for g := 0; g < n; g += 4 {
		z := 0
		for i := g; i < min(g+4, n); i++ {
			if size == 2 { // branch-free for bf16/f16
				x := uint32(raw[2*i]) | uint32(raw[2*i+1]&0x7f)<<8
				z += int(1 - (x+0x7fff)>>15)
			} else if isZero(raw, i, size) {
				z++
			}
		}
		s.Zeros += int64(z)
		if z < 2 {
			s.Follows24 = false
		}
	}
	return s
}

// Sparsity is the fraction of zeros as llm-compressor's tensor_sparsity
// computes it (float32).
func (s Stats) Sparsity() float32 {
	if s.Numel == 0 {
		return 0
	}
	return float32(s.Zeros) / float32(s.Numel)
}

// Qualifies reports whether a module with these weight stats is a sparse
// compression target for the structure (llm-compressor's
// is_sparse_compression_target).
func (s Stats) Qualifies(structure string) bool {
	return s.Sparsity() >= Threshold && (structure != TwoFour || s.Follows24)
}

// Add accumulates another tensor's counts (Follows24 is not meaningful for
// a sum).
func (s *Stats) Add(o Stats) {
	s.Zeros += o.Zeros
	s.Numel += o.Numel
}

// Module is one Linear module of a model and whether it qualified.
type Module struct {
	Name      string // e.g. model.layers.0.self_attn.q_proj, lm_head
	Qualifies bool
}

// TargetsAndIgnore reduces the Linear modules (in model order) to
// sparsity_config targets and ignore as llm-compressor does.
func TargetsAndIgnore(linear []Module) (targets, ignore []string) {
	var yes, no []string
	for _, m := range linear {
		if m.Qualifies {
			yes = append(yes, m.Name)
		} else {
			no = append(no, m.Name)
		}
	}
	switch {
	case len(yes) >= len(no):
		return []string{"Linear"}, no
	case len(yes) > 0:
		return yes, no
	}
	return nil, nil
}

// SparsityConfig is compressed-tensors' SparsityCompressionConfig as
// model_dump writes it (keys sorted by encoding/json as sort_keys does).
type SparsityConfig struct {
	Format                   string   `json:"format"`
	GlobalSparsity           float64  `json:"global_sparsity"`
	Ignore                   []string `json:"ignore"`
	RegistryRequiresSubclass bool     `json:"registry_requires_subclass"`
	SparsityStructure        string   `json:"sparsity_structure"`
	Targets                  []string `json:"targets"`
}

// QuantizationConfig is config.json's quantization_config for a model
// with sparsity only.
type QuantizationConfig struct {
	QuantMethod     string          `json:"quant_method"`
	SparsityConfig  *SparsityConfig `json:"sparsity_config"`
	TransformConfig map[string]any  `json:"transform_config"`
	Version         string          `json:"version"`
}

// NewQuantizationConfig wraps a sparsity config as update_config does.
func NewQuantizationConfig(s *SparsityConfig) *QuantizationConfig {
	return &QuantizationConfig{QuantMethod: QuantMethod, SparsityConfig: s, TransformConfig: map[string]any{}, Version: Version}
}

// checkFormat rejects a format this package cannot decompress.
func checkFormat(format string) error {
	switch format {
	case SparseBitmask, Sparse24Bitmask:
		return nil
	}
	return fmt.Errorf("compressed-tensors format %q is not supported (supported: %s, %s, %s)", format, Dense, SparseBitmask, Sparse24Bitmask)
}
