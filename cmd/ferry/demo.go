package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/internal/demodata"
	"github.com/ferry-ai/ferry/internal/devstack"
	"github.com/ferry-ai/ferry/internal/link"
	"github.com/ferry-ai/ferry/internal/pki"
)

// DemoQuery is the query `ferry demo` runs: which recently active customers
// will place no order in the next 30 days (churn).
const DemoQuery = "PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0"

func runDemoData(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry demo-data", flag.ContinueOnError)
	scale := fs.Float64("scale", 1, "size: 1 is about 10k customers and 1M order items")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same data)")
	out := fs.String("out", "", "warehouse URL to write, e.g. duckdb:///tmp/demo.db")
	force := fs.Bool("force", false, "replace an existing DuckDB file")
	if err := parse(fs, args, "ferry demo-data --scale S --out duckdb:///path/demo.db [--seed N] [--force]", stdout); err != nil {
		return done(err)
	}
	if *out == "" || fs.NArg() > 0 {
		return cli.Usagef("ferry demo-data needs --out URL and takes no arguments")
	}
	if *scale <= 0 || *scale > 100 {
		return cli.Usagef("--scale %g: want a number in (0, 100]", *scale)
	}
	start := time.Now()
	sum, err := writeDemoData(ctx, *out, *scale, *seed, *force)
	if err != nil {
		return err
	}
	var parts []string
	for _, t := range sum.Tables {
		parts = append(parts, fmt.Sprintf("%s=%d", t.Name, t.Rows))
	}
	fmt.Fprintf(stdout, "wrote demo warehouse %s in %.1fs: %s\n", *out, time.Since(start).Seconds(), strings.Join(parts, " "))
	return nil
}

func writeDemoData(ctx context.Context, out string, scale float64, seed uint64, force bool) (demodata.Summary, error) {
	u, err := url.Parse(out)
	if err != nil {
		return demodata.Summary{}, cli.Usagef("--out %q is not a URL", out)
	}
	if u.Scheme == "duckdb" && u.Path != "" {
		if _, err := os.Stat(u.Path); err == nil {
			if !force {
				return demodata.Summary{}, cli.Usagef("%s exists; pass --force to replace it", u.Path)
			}
			for _, p := range []string{u.Path, u.Path + ".wal"} {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					return demodata.Summary{}, err
				}
			}
		}
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return demodata.Summary{}, err
		}
	}
	c, err := openWarehouse(ctx, out)
	if err != nil {
		return demodata.Summary{}, err
	}
	defer c.Close()
	return demodata.Generate(ctx, c, demodata.Config{Scale: scale, Seed: seed})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry demo", flag.ContinueOnError)
	dir := fs.String("dir", ".ferry-demo", "working directory for the demo's warehouse, certificates, metadata and logs")
	scale := fs.Float64("scale", 1, "demo warehouse size (reused when present at this scale)")
	query := fs.String("query", DemoQuery, "the predictive query")
	output := fs.String("output", "churn_predictions", "prediction table")
	binDir := fs.String("bin", "", "directory of the ferry binaries (default: next to this one)")
	warehouse := fs.String("warehouse", "", "an existing DuckDB warehouse to run on (duckdb:///path.db) instead of generating the demo's")
	keep := fs.Bool("keep", stdinIsTerminal(), "after the job, keep the three processes and the console running until interrupted (default: when run from a terminal)")
	optionsArg := fs.String("options", "", `training options as JSON, e.g. {"validation_start":"2005-01-01T00:00:00Z","test_start":"2010-01-01T00:00:00Z","anchor_step_days":30}`)
	if err := parse(fs, args, "ferry demo [--dir DIR] [--scale S | --warehouse duckdb:///PATH] [--query Q] [--output TABLE] [--options JSON] [--keep]", stdout); err != nil {
		return done(err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("ferry demo takes no arguments")
	}
	var options link.JobOptions
	if *optionsArg != "" {
		if err := link.Decode("--options", []byte(*optionsArg), &options); err != nil {
			return cli.Usage(err)
		}
		if err := options.Validate(); err != nil {
			return cli.Usage(err)
		}
	}
	if *warehouse != "" && !strings.HasPrefix(*warehouse, "duckdb://") {
		return cli.Usagef("--warehouse %s: the demo runs on a DuckDB file (duckdb:///path.db)", *warehouse)
	}
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		*binDir = filepath.Dir(exe)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	t0 := time.Now()
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	// 1. The warehouse: the one given, or the demo's, reused when it exists
	// at this scale.
	dbPath := filepath.Join(abs, fmt.Sprintf("demo-scale-%g.db", *scale))
	wh := "duckdb://" + dbPath
	if *warehouse != "" {
		wh = *warehouse
		dbPath = strings.TrimPrefix(wh, "duckdb://")
		if _, err := os.Stat(dbPath); err != nil {
			return cli.Usage(fmt.Errorf("--warehouse: %w", err))
		}
		say("== warehouse: %s", dbPath)
	} else if _, err := os.Stat(dbPath); err == nil {
		say("== demo warehouse: reusing %s", dbPath)
	} else {
		say("== demo warehouse: generating scale %g into %s", *scale, dbPath)
		start := time.Now()
		sum, err := writeDemoData(ctx, wh, *scale, 1, true)
		if err != nil {
			return err
		}
		for _, t := range sum.Tables {
			say("   %-12s %9d rows", t.Name, t.Rows)
		}
		say("   generated in %.1fs", time.Since(start).Seconds())
	}

	// 2. Three processes on loopback.
	say("== starting control plane, engine and agent (mutual TLS 1.3; development CA in %s; the agent enrolls with a one-time token)", filepath.Join(abs, "run", "certs"))
	runDir := filepath.Join(abs, "run")
	_ = os.RemoveAll(runDir)
	stack, err := devstack.Start(ctx, devstack.Options{BinDir: *binDir, Dir: runDir, Warehouse: wh, SignInLinks: true})
	if err != nil {
		return err
	}
	defer stack.Stop()
	say("   control plane API %s, agent RPC %s, engine Flight %s; agent %s enrolled (key in %s) and connected (outbound only)",
		stack.APIURL, stack.AgentAddr, stack.EngineAddr, devstack.AgentID, stack.AgentState)

	// 3. The console, and a one-time link that signs its admin in.
	var link api.SignInLink
	if err := stack.Client.Do(ctx, "POST", api.PathSignInLinks, api.SignInLinkRequest{User: "demo-admin", Role: "admin"}, &link); err != nil {
		return fmt.Errorf("sign-in link: %w", err)
	}
	say("== web console: %s/console/ (the development CA %s signs its certificate: your browser will warn)", stack.APIURL, filepath.Join(runDir, "certs", pki.CAFile))
	say("   sign in as demo-admin with this one-time link (valid until %s, once):", link.ExpiresAt.Local().Format("15:04:05"))
	say("   %s", link.URL)

	// 4. Submit and follow.
	say("== submitting: %s", *query)
	job, err := stack.Client.SubmitRequest(ctx, api.SubmitRequest{Query: *query, OutputTable: *output, Options: options})
	if err != nil {
		return err
	}
	say("   job %s; tables the engine needs: %s", job.ID, strings.Join(job.Tables, ", "))
	d, err := follow(ctx, stack.Client, job.ID, stdout)
	if err != nil {
		return err
	}
	if d.Job.State != api.StateSucceeded {
		msg := ""
		if d.Job.Error != nil {
			msg = d.Job.Error.Stage + ": " + d.Job.Error.Message
		}
		return fmt.Errorf("job %s %s: %s (logs in %s)", job.ID, d.Job.State, msg, filepath.Join(runDir, "logs"))
	}

	// 5. Metrics beside the baselines.
	if m := d.Model; m != nil && m.Test != nil {
		printMetrics(say, m)
	}

	// 6. What the control plane holds: metadata only.
	say("== what the control plane holds about the job (metadata only: no row, no key, no value)")
	enc := json.NewEncoder(stdout)
	enc.SetIndent("   ", "  ")
	enc.SetEscapeHTML(false)
	fmt.Fprint(stdout, "   ")
	meta := *d
	if meta.Model != nil {
		m := *meta.Model
		m.FeatureImportance = topN(m.FeatureImportance, 5)
		meta.Model = &m
	}
	_ = enc.Encode(meta)

	// 7. Stop the processes (after the console's visit, with --keep), then
	// read the predictions back from DuckDB.
	if *keep {
		say("== the job %s is in the console at %s/console/#/jobs/%s; press Ctrl-C to stop", job.ID, stack.APIURL, job.ID)
		<-ctx.Done()
		ctx = context.WithoutCancel(ctx)
	}
	say("== stopping the three processes")
	if err := stack.Stop(); err != nil {
		return err
	}
	say("== first rows of %s, read back from %s", *output, dbPath)
	c, err := openWarehouse(ctx, wh)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.Read(ctx, *output, connectors.ReadOptions{Limit: 5})
	if err != nil {
		return err
	}
	defer r.Release()
	if err := writeCSV(stdout, r); err != nil {
		return err
	}
	say("== done in %.1fs", time.Since(t0).Seconds())
	return nil
}

func topN(m map[string]float64, n int) map[string]float64 {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[j].v > all[i].v || (all[j].v == all[i].v && all[j].k < all[i].k) {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	out := map[string]float64{}
	for i := 0; i < len(all) && i < n; i++ {
		out[all[i].k] = all[i].v
	}
	return out
}

// printMetrics prints a model's validation and test metrics beside the
// baselines, in the task's terms.
func printMetrics(say func(string, ...any), m *api.Model) {
	say("== metrics (%s; anchors held out by time: %d validation and %d test examples)", m.TaskType, m.ValidationRows, m.TestRows)
	cols, row := []string{"AUROC", "avg prec", "accuracy"}, func(x *api.Metric) []float64 { return []float64{x.AUROC, x.AveragePrecision, x.Accuracy} }
	switch m.TaskType {
	case "regression":
		cols, row = []string{"MAE", "RMSE"}, func(x *api.Metric) []float64 { return []float64{x.MAE, x.RMSE} }
	case "multiclass_classification":
		cols, row = []string{"accuracy"}, func(x *api.Metric) []float64 { return []float64{x.Accuracy} }
	case "recommendation":
		cols, row = []string{fmt.Sprintf("MAP@%d", m.TopK)}, func(x *api.Metric) []float64 { return []float64{x.MAPAtK} }
	}
	line := func(name string, x *api.Metric) {
		if x == nil {
			return
		}
		b := fmt.Sprintf("   %-38s", name)
		for _, v := range row(x) {
			b += fmt.Sprintf(" %10.4f", v)
		}
		say("%s", b)
	}
	head := fmt.Sprintf("   %-38s", "")
	for _, c := range cols {
		head += fmt.Sprintf(" %10s", c)
	}
	say("%s", head)
	line("model "+m.ModelID+", validation", m.Validation)
	line("model "+m.ModelID+", test", m.Test)
	if m.TaskType == "recommendation" {
		line("baseline: the entity's own items, test", m.BaselineRecentCount)
		line("baseline: the most popular items, test", m.BaselineLabelRate)
	} else {
		line("baseline: the target's last window, test", m.BaselineRecentCount)
		line("baseline: a constant from training, test", m.BaselineLabelRate)
	}
	say("   %d features, %d anchors, %d train rows, %d parameter sets, best iteration %d; features %.1fs, training %.1fs",
		m.NumFeatures, m.Anchors, m.TrainRows, m.ParameterSets, m.BestIteration, m.FeatureSeconds, m.TrainSeconds)
}

// stdinIsTerminal reports whether standard input is a terminal (someone
// may press Ctrl-C), not a file, pipe or /dev/null (a script or CI; /dev/null
// is a character device too, so the file mode cannot tell).
func stdinIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}
