// Package provenance describes where a number comes from: the data a model
// was calibrated or evaluated on, and the machine that measured it. It
// holds types only, so report.json, the Γ store's manifest and `eval
// --json` state them in one form, and packages that record provenance need
// not depend on the code that produced it.
package provenance

import "runtime"

// Data states exactly which data a number was computed on, so numbers can
// be compared (eval.Manifest).
type Data struct {
	Dataset   string `json:"dataset"`
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	Seqlen    int    `json:"seqlen"`
	Windows   int    `json:"windows"`
	Tokens    int    `json:"tokens"` // tokens in the stream before windowing
	Seed      *int   `json:"seed,omitempty"`
	Tokenizer string `json:"tokenizer,omitempty"`
	Note      string `json:"note,omitempty"`
	// Range is the evaluated slice of the protocol's windows, when not
	// all of them (eval --windows A:B, --skip, --limit).
	Range *WindowRange `json:"window_range,omitempty"`
}

// WindowRange is windows [From, To) of the Of windows a protocol yields.
type WindowRange struct {
	From int `json:"from"`
	To   int `json:"to"`
	Of   int `json:"of"`
}

// Machine records where the numbers were measured.
type Machine struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
}

// ThisMachine describes the current process, which computes with the
// named matrix kernel.
func ThisMachine(kernel string) Machine {
	return Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.GOMAXPROCS(0), Kernel: kernel}
}
