package compressed

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ReadConfig returns the sparsity_config of a config.json (nil when it has
// no quantization_config or no sparsity_config). Quantized checkpoints, of
// compressed-tensors or any other method, are refused: only sparsity is
// understood here.
func ReadConfig(configJSON []byte) (*SparsityConfig, error) {
	var c struct {
		Q *struct {
			QuantMethod  string          `json:"quant_method"`
			ConfigGroups map[string]any  `json:"config_groups"`
			Sparsity     *SparsityConfig `json:"sparsity_config"`
		} `json:"quantization_config"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return nil, fmt.Errorf("config.json is not valid JSON: %w", err)
	}
	q := c.Q
	switch {
	case q == nil:
		return nil, nil
	case q.QuantMethod != QuantMethod:
		return nil, fmt.Errorf("config: quantized checkpoints (quant_method %q) are not supported", q.QuantMethod)
	case len(q.ConfigGroups) > 0:
		return nil, fmt.Errorf("config: compressed-tensors quantization (config_groups) is not supported; only sparsity_config")
	case q.Sparsity == nil:
		return nil, nil
	}
	if q.Sparsity.Format != Dense {
		if err := checkFormat(q.Sparsity.Format); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return q.Sparsity, nil
}

// WriteConfig returns configJSON with quantization_config set to q (any
// previous one replaced; removed when q is nil), re-encoded as ModelCompressor.update_config writes
// it: json.dump(indent=2, sort_keys=True). Numbers keep their original
// spelling.
func WriteConfig(configJSON []byte, q *QuantizationConfig) ([]byte, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(configJSON))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("config.json is not valid JSON: %w", err)
	}
	delete(m, "quantization_config")
	if q != nil {
		m["quantization_config"] = q
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil { // map keys come out sorted
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
