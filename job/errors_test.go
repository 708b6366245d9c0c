package job

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassOf(t *testing.T) {
	base := errors.New("open calib.txt: no such file")
	cases := []struct {
		err  error
		want Class
	}{
		{base, Transient},
		{Invalid(base), InvalidInput},
		{fmt.Errorf("step 3: shard s1: %w", Invalid(base)), InvalidInput},
		{Permanentf("store holds %d parts", 3), Permanent},
		{fmt.Errorf("attempt: %w", MarkPermanent(base)), Permanent},
	}
	for _, c := range cases {
		if got := ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", Invalid(base)), base) {
		t.Error("a classed error hides its cause from errors.Is")
	}
	if Invalid(nil) != nil || MarkPermanent(nil) != nil {
		t.Error("classing nil made an error")
	}
}

// TestSpecValidateInputs: steps 0 is an error, not a silent 128; an
// unknown calibration format is refused.
func TestSpecValidateInputs(t *testing.T) {
	ok := Spec{Model: "m.bin", CalibPath: "c.txt", CalibFormat: "lines", Seqlen: 64, Steps: 4}
	ok.Defaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	zero := ok
	zero.Steps = 0
	zero.Defaults()
	if err := zero.Validate(); err == nil || zero.Steps != 0 {
		t.Fatalf("steps 0 accepted (became %d)", zero.Steps)
	}
	xml := ok
	xml.CalibFormat = "xml"
	if err := xml.Validate(); err == nil {
		t.Fatal("calib_format xml accepted")
	}
}
