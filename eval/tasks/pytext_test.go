package tasks

import "testing"

func TestPythonStringSemantics(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		// str.capitalize lower-cases everything after the first character
		{pyCapitalize("a FEW women"), "A few women"},
		{pyCapitalize(""), ""},
		// str.strip also strips the ASCII separators U+001C..U+001F
		{pyStrip("\x1c\t x \u00a0\x1f"), "x"},
		{pyRstrip("Answer:  \n"), "Answer:"},
		// hellaswag preprocess, step by step as utils.py
		{hellaswagPreprocess(" Make tea [title] Boil water. [step] Pour it. "), "Make tea. Boil water. Pour it."},
		{hellaswagPreprocess("[header] How to x [substeps] y"), " How to x y"},
		{hellaswagPreprocess("a [b\nc] d"), "a [b\nc] d"}, // "." does not cross newlines
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if n := pyLen("héllo"); n != 5 {
		t.Errorf("pyLen counts %d, want 5 code points", n)
	}
}
