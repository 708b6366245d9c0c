package model

import "fmt"

// Matrix names one of the seven prunable linear layers of a decoder block.
type Matrix int

// The seven target matrices of a decoder layer, in the fixed order used for
// tie-breaking and for every cross-shard reduction (DESIGN §2.4, §2.7).
const (
	Q Matrix = iota
	K
	V
	O
	Gate // w1
	Up   // w3
	Down // w2
	NumMatrices
)

var matrixNames = [...]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

func (m Matrix) String() string {
	if m < 0 || m >= NumMatrices {
		return fmt.Sprintf("matrix(%d)", int(m))
	}
	return matrixNames[m]
}

// ParseMatrix maps "q_proj" (etc.) back to a Matrix.
func ParseMatrix(s string) (Matrix, error) {
	for i, n := range matrixNames {
		if n == s {
			return Matrix(i), nil
		}
	}
	return 0, fmt.Errorf("unknown matrix %q", s)
}

// Shape is the (out, in) shape of a target matrix under c.
func (m Matrix) Shape(c *Config) (out, in int) {
	switch m {
	case Q:
		return c.QDim(), c.Dim
	case K, V:
		return c.KVDim(), c.Dim
	case O:
		return c.Dim, c.QDim()
	case Gate, Up:
		return c.Hidden, c.Dim
	default:
		return c.Dim, c.Hidden
	}
}

// Target identifies one prunable matrix of the model.
type Target struct {
	Layer  int
	Matrix Matrix
}

func (t Target) String() string { return fmt.Sprintf("layers.%d.%s", t.Layer, t.Matrix) }

// TensorName is the canonical (Hugging Face) tensor name of the target.
func (t Target) TensorName() string { return LayerTensor(t.Layer, t.Matrix.module()+".weight") }

// BiasName is the canonical name of the target's bias.
func (t Target) BiasName() string { return LayerTensor(t.Layer, t.Matrix.module()+".bias") }

func (m Matrix) module() string {
	if m <= O {
		return "self_attn." + m.String()
	}
	return "mlp." + m.String()
}

// Targets lists every target of the model in canonical order
// (layer, then matrix).
func Targets(c *Config) []Target {
	ts := make([]Target, 0, c.Layers*int(NumMatrices))
	for l := 0; l < c.Layers; l++ {
		for m := Matrix(0); m < NumMatrices; m++ {
			ts = append(ts, Target{l, m})
		}
	}
	return ts
}

// Canonical names of the non-target tensors.
const (
	EmbedName = "model.embed_tokens.weight"
	NormName  = "model.norm.weight"
	HeadName  = "lm_head.weight"
)

// LayerTensor names a tensor of decoder layer l.
func LayerTensor(l int, suffix string) string { return fmt.Sprintf("model.layers.%d.%s", l, suffix) }

// AttnNormName and MLPNormName name the two RMSNorm weights of layer l.
func AttnNormName(l int) string { return LayerTensor(l, "input_layernorm.weight") }

// MLPNormName names the RMSNorm before the MLP of layer l.
func MLPNormName(l int) string { return LayerTensor(l, "post_attention_layernorm.weight") }

// QNormName and KNormName name the per-head RMSNorm weights (HeadDim
// values each) that Qwen3 applies to queries and keys before RoPE. They are
// norms, not pruning targets (DESIGN §2.1).
func QNormName(l int) string { return LayerTensor(l, "self_attn.q_norm.weight") }

// KNormName names the per-head key RMSNorm weight of layer l (Qwen3).
func KNormName(l int) string { return LayerTensor(l, "self_attn.k_norm.weight") }

// InputGroup numbers the distinct inputs of a decoder layer's targets:
// q, k and v read the attention norm's output (0), o the attention output
// (1), gate and up the MLP norm's output (2), down the SwiGLU product (3).
// Matrices of one group share activation statistics.
func InputGroup(m Matrix) int {
	switch m {
	case Q, K, V:
		return 0
	case O:
		return 1
	case Gate, Up:
		return 2
	}
	return 3
}

// GroupLeader reports whether m is the first matrix of its input group
// (observers count a shared input once, at its leader).
func GroupLeader(m Matrix) bool { return m == Q || m == O || m == Gate || m == Down }
