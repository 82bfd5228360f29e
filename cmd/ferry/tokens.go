package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ferry-ai/ferry/internal/cli"
)

// runTokens manages the caller's API tokens: create (the secret printed
// once), list, revoke.
func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry tokens create --name N --role viewer|editor|admin [--ttl 720h] | list | revoke <token id>"
	if len(args) == 0 {
		return cli.Usagef("usage: %s", synopsis)
	}
	var af apiFlags
	fs := flag.NewFlagSet("ferry tokens "+args[0], flag.ContinueOnError)
	af.register(fs)
	switch args[0] {
	case "-h", "--help":
		fmt.Fprintf(stdout, "Usage: %s\n", synopsis)
		return nil
	case "create":
		name := fs.String("name", "", "what the token is for")
		role := fs.String("role", "viewer", "viewer, editor or admin (at most yours)")
		ttl := fs.String("ttl", "", "lifetime, e.g. 720h (default 30 days)")
		if err := parse(fs, args[1:], "ferry tokens create --name N --role R [--ttl D]", stdout); err != nil {
			return done(err)
		}
		if *name == "" || fs.NArg() > 0 {
			return cli.Usagef("ferry tokens create needs --name and takes no arguments")
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		t, err := c.CreateToken(ctx, *name, *role, *ttl)
		if err != nil {
			return err
		}
		// The secret goes to stdout alone, for a redirect into a 0600 file.
		fmt.Fprintln(stdout, t.Secret)
		fmt.Fprintln(stderr, "ferry: the token is shown this once; keep it in a file only you can read")
		return nil
	case "list":
		if err := parse(fs, args[1:], "ferry tokens list", stdout); err != nil {
			return done(err)
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		toks, err := c.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tEXPIRES\tREVOKED")
		for _, t := range toks {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\n", t["id"], t["name"], t["role"], t["expires_at"], t["revoked_at"])
		}
		return tw.Flush()
	case "revoke":
		if err := parse(fs, args[1:], "ferry tokens revoke <token id>", stdout); err != nil {
			return done(err)
		}
		if fs.NArg() != 1 {
			return cli.Usagef("ferry tokens revoke takes one token id")
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		if err := c.RevokeToken(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
		return nil
	default:
		return cli.Usagef("unknown tokens subcommand %q (usage: %s)", args[0], synopsis)
	}
}
