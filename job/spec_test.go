package job

import "testing"

// TestSpecHashStable: the hash of a spec (which names checkpoints, Γ
// stores and ledgers) is that of its canonical JSON; it must not change
// when the Go types around it do. The value was computed with the
// shard.Spec of commit 16f1335, before Spec moved here and Metric became
// typed.
func TestSpecHashStable(t *testing.T) {
	s := Spec{Model: "m.bin", Tokenizer: "t.bin", CalibPath: "c.txt", CalibFormat: "lines", Seqlen: 64, Steps: 12}
	s.Defaults()
	if got, want := s.Hash(), "729c296ea081ed778cb694fd8606c697810104114a6b49896a580f399fcc47a7"; got != want {
		t.Fatalf("spec hash %s, want %s: existing runs would no longer resume", got, want)
	}
}
