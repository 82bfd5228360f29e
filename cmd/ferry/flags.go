package main

import (
	"flag"
	"io"

	"github.com/ferry-ai/ferry/internal/cli"
)

// parse parses args with fs; --help prints the synopsis and flags and
// returns cli.ErrHelp.
func parse(fs *flag.FlagSet, args []string, synopsis string, stdout io.Writer) error {
	return cli.Parse(fs, args, "Usage: "+synopsis+"\n\nFlags:\n", stdout)
}

// done turns cli.ErrHelp into success.
func done(err error) error { return cli.Done(err) }

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
