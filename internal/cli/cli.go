// Package cli is the shared plumbing of Ferry's commands: exit codes, usage
// errors and JSON logging.
//
// Exit codes: 0 success, 1 failure, 2 bad input (flags, arguments,
// configuration, query, names). Errors print as one line, never a stack.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// ErrUsage marks bad input: the command exits 2.
var ErrUsage = errors.New("usage")

// Usagef returns an error that exits 2.
func Usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Usage wraps err so the command exits 2.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{msg: err.Error(), err: err}
}

type usageError struct {
	msg string
	err error
}

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Unwrap() error        { return e.err }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// Main runs fn with a context cancelled on SIGINT or SIGTERM and exits with
// the code its error calls for. isUsage may classify more errors as bad
// input (exit 2).
func Main(name string, fn func(ctx context.Context, args []string, stdout, stderr io.Writer) error, isUsage func(error) bool) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := fn(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(os.Stderr, name, err, isUsage))
}

// ExitCode prints err as one line (if any) and returns the exit code.
func ExitCode(stderr io.Writer, name string, err error, isUsage func(error) bool) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, OneLine(err.Error()))
	if errors.Is(err, ErrUsage) || (isUsage != nil && isUsage(err)) {
		return 2
	}
	return 1
}

// OneLine folds a multi-line message onto one line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// Logger returns a JSON slog logger on w at the named level ("" is info).
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		l = slog.LevelInfo
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		return nil, Usagef("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// ErrHelp ends a command after its usage was printed on request (exit 0).
var ErrHelp = errors.New("help shown")

// Parse parses args with fs. On --help it prints usage and fs's defaults to
// stdout and returns ErrHelp; a bad flag is a usage error (exit 2).
func Parse(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return ErrHelp
		}
		return Usagef("%v (see --help)", err)
	}
	return nil
}

// Done turns ErrHelp into success.
func Done(err error) error {
	if errors.Is(err, ErrHelp) {
		return nil
	}
	return err
}
