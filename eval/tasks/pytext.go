package tasks

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The harness manipulates prompts with Python str methods; these helpers
// reproduce the few whose semantics differ from Go's standard library, so
// that every prompt and continuation is the same string, character for
// character.

// pyIsSpace is Python's str.isspace for one code point: Unicode White_Space
// plus the four ASCII information separators U+001C..U+001F (bidirectional
// class B/S), which Go's unicode.IsSpace leaves out.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's s.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pyRstrip is Python's s.rstrip().
func pyRstrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }

// pyLen is Python's len(s): code points, not bytes. acc_norm divides by it.
func pyLen(s string) int { return utf8.RuneCountInString(s) }

// pyCapitalize is Python's s.capitalize() (3.8+): the first character in
// title case and every other character lower-cased. Unlike a plain "upper
// first letter" it also lower-cases the rest, which HellaSwag relies on.
// (Python's one-to-many special casings, e.g. "ß".upper(), are not
// reproduced; the HellaSwag fields it is used on are ASCII.)
func pyCapitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

// hellaswagBrackets is the harness's re.sub("\\[.*?\\]", "", text): a lazy
// match that, as in Python, does not cross newlines.
var hellaswagBrackets = regexp.MustCompile(`\[.*?\]`)

// hellaswagPreprocess is lm_eval/tasks/hellaswag/utils.py preprocess():
// strip, " [title]" → ". ", drop every "[...]" (WikiHow artefacts), then one
// non-overlapping pass replacing double spaces by single ones.
func hellaswagPreprocess(text string) string {
	text = pyStrip(text)
	text = strings.ReplaceAll(text, " [title]", ". ")
	text = hellaswagBrackets.ReplaceAllString(text, "")
	return strings.ReplaceAll(text, "  ", " ")
}
