package consensus

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter lets raft (which logs through hclog) write to the caller's
// slog.Logger, so a process has one log stream with one format.
type hclogAdapter struct {
	base *slog.Logger // the caller's logger
	name string
	args []any
	l    *slog.Logger // base with name and args attached
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHclog(base *slog.Logger, name string) *hclogAdapter {
	return (&hclogAdapter{base: base}).derive(name, nil)
}

// derive returns a copy named name with args as its implied arguments.
func (a *hclogAdapter) derive(name string, args []any) *hclogAdapter {
	l := a.base
	if name != "" {
		l = l.With("component", name)
	}
	return &hclogAdapter{base: a.base, name: name, args: args, l: l.With(args...)}
}

// levelTrace sits below slog's Debug, where hclog's Trace lives.
const levelTrace = slog.LevelDebug - 4

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	a.l.Log(context.Background(), toSlogLevel(expectedLevel(level, msg, args)), msg, args...)
}

// initialElection is raft's warning when a follower's heartbeat timer
// fires and it stands for election.
const initialElection = "heartbeat timeout reached, starting election"

// expectedLevel lowers to info the raft warnings that describe normal
// operation, so that a healthy start prints no warning: a node that has
// never seen a leader (every start of a cluster, and of the one-process
// mode with its single node) reaches the heartbeat timeout by design. The
// same timeout with a leader known before stays a warning: that leader is
// gone.
func expectedLevel(level hclog.Level, msg string, args []any) hclog.Level {
	if level != hclog.Warn || msg != initialElection {
		return level
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "last-leader-id" && fmt.Sprint(args[i+1]) != "" {
			return level
		}
	}
	return hclog.Info
}

func (a *hclogAdapter) enabled(l slog.Level) bool { return a.l.Enabled(context.Background(), l) }

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(levelTrace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.args }
func (a *hclogAdapter) Name() string       { return a.name }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return a.derive(a.name, append(append([]any(nil), a.args...), args...))
}

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return a.derive(name, a.args)
}

// SetLevel is a no-op: the level belongs to the caller's slog handler.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(toSlogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	level := slog.LevelInfo
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = toSlogLevel(opts.ForceLevel)
	}
	return slog.NewLogLogger(a.l.Handler(), level)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(opts).Writer()
}
