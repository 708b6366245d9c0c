package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/unipruning/unipruning/model"
)

// Every command validates its flags the same way and reports a problem in
// one form: "--name value: problem" for a bad value, "--name is required:
// what it is" for a missing one. Such errors are usage errors: the command
// exits with status 2 (a failure of the work itself exits with 1).

// usageError marks an invalid command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// isUsage reports whether err is an invalid command line: ours, or cobra's
// unknown command or flag.
func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.HasPrefix(msg, "invalid argument")
}

// badFlag reports a bad value of --name.
func badFlag(name string, value any, format string, args ...any) error {
	return usageError{fmt.Errorf("--%s %v: %s", name, value, fmt.Sprintf(format, args...))}
}

// missingFlag reports a required --name that was not given.
func missingFlag(name, what string) error {
	return usageError{fmt.Errorf("--%s is required: %s", name, what)}
}

// conflictingFlags reports flags that exclude each other.
func conflictingFlags(a, b string) error {
	return usageError{fmt.Errorf("--%s and --%s exclude each other", a, b)}
}

// checkFraction checks a sparsity: in [0, 1).
func checkFraction(name string, v float64) error {
	if !(v >= 0 && v < 1) {
		return badFlag(name, v, "outside [0, 1)")
	}
	return nil
}

// parsePattern reads an N:M pattern with 1 ≤ N < M.
func parsePattern(name, s string) (n, m int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		n, err = strconv.Atoi(a)
		if err == nil {
			m, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || n >= m {
		return 0, 0, badFlag(name, s, "want N:M with 1 ≤ N < M, e.g. 2:4")
	}
	return n, m, nil
}

// windowLength resolves a --seqlen against the model: 0 (the flag left
// out) means min(2048, context); longer than the context is an error.
func windowLength(seqlen int, c *model.Config) (int, error) {
	switch {
	case seqlen < 0:
		return 0, badFlag("seqlen", seqlen, "must be positive")
	case seqlen == 0:
		seqlen = min(2048, c.MaxSeq)
	case seqlen > c.MaxSeq:
		return 0, badFlag("seqlen", seqlen, "exceeds the model's context of %d tokens", c.MaxSeq)
	}
	return seqlen, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// requiredAnnotation marks flags a command cannot run without.
const requiredAnnotation = "unipruning_required"

// markRequired makes cmd's flags required: their help says so and
// checkFlags refuses to run without them. Only flags that are required
// whatever else is given are marked; conditional ones say their condition
// in their help and are checked by the command.
func markRequired(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		f := cmd.Flags().Lookup(n)
		if f == nil {
			panic("markRequired: no flag --" + n)
		}
		f.Usage += " (required)"
		_ = cmd.Flags().SetAnnotation(n, requiredAnnotation, []string{"true"})
	}
}

// positiveFlags are counts and lengths whose default is taken when the
// flag is left out: given, they must be positive (0 is never silently
// replaced by the default).
var positiveFlags = map[string]bool{
	"seqlen": true, "eval-seqlen": true, "steps": true, "nsamples": true,
	"batch": true, "shards": true, "tasks-batch": true,
}

// nonNegativeFlags are counts where 0 has a documented meaning (never,
// all, none).
var nonNegativeFlags = map[string]bool{"checkpoint-every": true, "limit": true, "max-layer-sparsity": true}

// checkFlags is the validation every command gets before it runs: the
// required flags are given (all missing ones are named at once), and
// counts are positive (or non-negative) when given.
func checkFlags(cmd *cobra.Command) error {
	var missing []*pflag.Flag
	var bad error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, req := f.Annotations[requiredAnnotation]; req && !f.Changed {
			missing = append(missing, f)
		}
		if bad != nil || !f.Changed || !(positiveFlags[f.Name] || nonNegativeFlags[f.Name]) {
			return
		}
		v, err := strconv.ParseFloat(f.Value.String(), 64)
		switch {
		case err != nil:
			bad = badFlag(f.Name, f.Value, "not a number")
		case positiveFlags[f.Name] && v <= 0:
			bad = badFlag(f.Name, f.Value, "must be positive (leave it out for the default)")
		case v < 0:
			bad = badFlag(f.Name, f.Value, "must not be negative")
		}
	})
	switch len(missing) {
	case 0:
		return bad
	case 1:
		return missingFlag(missing[0].Name, strings.TrimSuffix(missing[0].Usage, " (required)"))
	}
	names := make([]string, len(missing))
	for i, f := range missing {
		names[i] = "--" + f.Name
	}
	return usageError{fmt.Errorf("%s and %s are required (see %s --help)",
		strings.Join(names[:len(names)-1], ", "), names[len(names)-1], cmd.CommandPath())}
}

// documentDefaults states the default of every flag whose help does not
// (cobra omits zero and empty defaults), on cmd and its subcommands.
func documentDefaults(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if strings.Contains(f.Usage, "default") || strings.Contains(f.Usage, "(required)") {
			return
		}
		switch f.Value.Type() {
		case "int", "int64", "uint64", "float64":
			if f.DefValue == "0" {
				f.Usage += " (default 0)"
			}
		case "duration":
			if f.DefValue == "0s" {
				f.Usage += " (default 0)"
			}
		case "string", "stringArray", "stringSlice":
			if f.DefValue == "" || f.DefValue == "[]" {
				f.Usage += " (default: none)"
			}
		}
	})
	for _, c := range cmd.Commands() {
		documentDefaults(c)
	}
}
