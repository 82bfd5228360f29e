package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ferry-ai/ferry/internal/cli"
)

// errHelp ends a command after its help was printed (exit 0).
var errHelp = errors.New("help shown")

// parse parses args with fs; --help prints usage to stdout and returns
// errHelp, a bad flag returns a usage error.
func parse(fs *flag.FlagSet, args []string, synopsis string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: %s\n\nFlags:\n", synopsis)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return errHelp
		}
		return cli.Usagef("%v (usage: %s)", err, synopsis)
	}
	return nil
}

// done turns errHelp into success.
func done(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// parseMixed parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseMixed(fs *flag.FlagSet, args []string, synopsis string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args, synopsis, stdout); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
