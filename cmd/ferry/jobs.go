package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/apiclient"
	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
)

// apiFlags are the flags every jobs subcommand takes; each defaults to an
// environment variable.
type apiFlags struct {
	url, tokenFile, ca string
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api", os.Getenv("FERRY_API"), "control plane API base `URL` (env FERRY_API)")
	fs.StringVar(&a.tokenFile, "token-file", os.Getenv("FERRY_TOKEN_FILE"), "`file` holding the API token (env FERRY_TOKEN_FILE)")
	fs.StringVar(&a.ca, "ca", os.Getenv("FERRY_CA"), "CA bundle `file` verifying the API's certificate (env FERRY_CA)")
}

func (a *apiFlags) client() (*apiclient.Client, error) {
	if a.url == "" || a.tokenFile == "" || a.ca == "" {
		return nil, cli.Usagef("--api, --token-file and --ca (or FERRY_API, FERRY_TOKEN_FILE, FERRY_CA) are required")
	}
	tok, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("token file: %w", err))
	}
	pool, err := pki.LoadCAPool(a.ca)
	if err != nil {
		return nil, cli.Usage(err)
	}
	c, err := apiclient.New(a.url, strings.TrimSpace(string(tok)), pool)
	if err != nil {
		return nil, cli.Usage(err)
	}
	return c, nil
}

func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "ferry jobs submit|status|list|cancel|logs [flags]"
	if len(args) == 0 {
		return cli.Usagef("usage: %s", synopsis)
	}
	var af apiFlags
	switch args[0] {
	case "-h", "--help":
		fmt.Fprintf(stdout, "Usage: %s\n  submit --query Q --output TABLE [--options JSON] [--wait]\n  status <job id>\n  list\n  cancel <job id>\n  logs <job id> [--follow]\n", synopsis)
		return nil
	case "submit":
		fs := flag.NewFlagSet("ferry jobs submit", flag.ContinueOnError)
		af.register(fs)
		query := fs.String("query", "", "the predictive query (PQL)")
		output := fs.String("output", "", "the prediction table to write in the warehouse")
		wait := fs.Bool("wait", false, "follow the job until it ends")
		optionsArg := fs.String("options", "", "training options as JSON (docs/pql.md)")
		if err := parse(fs, args[1:], "ferry jobs submit --query Q --output TABLE [--options JSON] [--wait]", stdout); err != nil {
			return done(err)
		}
		if *query == "" || *output == "" || fs.NArg() > 0 {
			return cli.Usagef("ferry jobs submit needs --query and --output and takes no arguments")
		}
		var options link.JobOptions
		if *optionsArg != "" {
			if err := link.Decode("--options", []byte(*optionsArg), &options); err != nil {
				return cli.Usage(err)
			}
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		job, err := c.SubmitRequest(ctx, api.SubmitRequest{Query: *query, OutputTable: *output, Options: options})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "submitted %s (%s)\n", job.ID, job.State)
		if !*wait {
			return nil
		}
		d, err := follow(ctx, c, job.ID, stdout)
		if err != nil {
			return err
		}
		if d.Job.State != api.StateSucceeded {
			return fmt.Errorf("job %s %s", d.Job.ID, d.Job.State)
		}
		return nil
	case "status":
		fs := flag.NewFlagSet("ferry jobs status", flag.ContinueOnError)
		af.register(fs)
		if err := parse(fs, args[1:], "ferry jobs status <job id>", stdout); err != nil {
			return done(err)
		}
		if fs.NArg() != 1 {
			return cli.Usagef("ferry jobs status takes one job id")
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		d, err := c.Get(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "list":
		fs := flag.NewFlagSet("ferry jobs list", flag.ContinueOnError)
		af.register(fs)
		if err := parse(fs, args[1:], "ferry jobs list", stdout); err != nil {
			return done(err)
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		jobs, err := c.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tSTATE\tCREATED\tOUTPUT\tQUERY")
		for _, j := range jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, j.CreatedAt.Format(time.RFC3339), j.OutputTable, j.Query)
		}
		return tw.Flush()
	case "cancel", "logs":
		fs := flag.NewFlagSet("ferry jobs "+args[0], flag.ContinueOnError)
		af.register(fs)
		followFlag := fs.Bool("follow", false, "logs: keep printing until the job ends")
		if err := parse(fs, args[1:], "ferry jobs "+args[0]+" <job id>", stdout); err != nil {
			return done(err)
		}
		if fs.NArg() != 1 {
			return cli.Usagef("ferry jobs %s takes one job id", args[0])
		}
		c, err := af.client()
		if err != nil {
			return err
		}
		if args[0] == "cancel" {
			j, err := c.Cancel(ctx, fs.Arg(0))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s\n", j.ID, j.State)
			return nil
		}
		// The job's log is its state history with the control plane's
		// notes: metadata only (rows never reach the control plane).
		if *followFlag {
			_, err := follow(ctx, c, fs.Arg(0), stdout)
			return err
		}
		d, err := c.Get(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		for _, h := range d.History {
			fmt.Fprintf(stdout, "%s  %-10s %s\n", h.At.Format(time.RFC3339Nano), h.State, h.Note)
		}
		if d.Job.Error != nil {
			fmt.Fprintf(stdout, "error at %s: %s\n", d.Job.Error.Stage, d.Job.Error.Message)
		}
		return nil
	default:
		return cli.Usagef("unknown jobs subcommand %q (usage: %s)", args[0], synopsis)
	}
}

// follow polls a job, printing each state change, until it ends.
func follow(ctx context.Context, c *apiclient.Client, id string, w io.Writer) (*api.JobDetail, error) {
	seen := 0
	start := time.Now()
	for {
		d, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		for ; seen < len(d.History); seen++ {
			h := d.History[seen]
			fmt.Fprintf(w, "  %6.1fs  %s\n", time.Since(start).Seconds(), h.State)
		}
		if d.Job.State.Terminal() {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
