package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdbdrv "github.com/duckdb/duckdb-go/v2"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/all"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/engine/pql"
	"github.com/ferry-ai/ferry/engine/train"
	"github.com/ferry-ai/ferry/internal/demodata"
	"github.com/ferry-ai/ferry/internal/devstack"
)

// demoQuery is the churn query `make demo` runs.
const demoQuery = "PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -90, 0, days) > 0"

// engineBench prints, for each demo scale: the engine's feature engineering
// (the plan's SQL over the job's Arrow tables in its in-memory DuckDB, read
// into matrices) beside DuckDB running the same SQL on its own file (the
// limit), XGBoost training, and a whole job through the three processes
// from submit to written predictions, split by stage.
func engineBench(ctx context.Context, dir, binDir string, scales []float64) error {
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	fmt.Println("\nengine: the demo's churn query at each scale")
	printHeader()
	type stageRow struct {
		scale  float64
		stages []string
	}
	var e2e []stageRow
	for _, scale := range scales {
		path := filepath.Join(dir, fmt.Sprintf("demo-%g.db", scale))
		wh := "duckdb://" + path
		mux := all.Mux()
		c, err := mux.Open(ctx, wh, nil)
		if err != nil {
			return err
		}
		if _, err := demodata.Generate(ctx, c, demodata.Config{Scale: scale, Seed: 1}); err != nil {
			c.Close()
			return err
		}
		in, release, err := demoInput(ctx, c)
		c.Close()
		if err != nil {
			return err
		}
		var out *train.Output
		heap, rss, err := peak(func() error {
			var err error
			out, err = train.Run(ctx, in, train.Options{Allocator: memory.DefaultAllocator})
			return err
		})
		release()
		if err != nil {
			return fmt.Errorf("scale %g: %w", scale, err)
		}
		out.Predictions.Release()
		r := out.Result
		examples := int64(r.TrainRows + r.ValidationRows + r.TestRows + r.PredictionRows)
		direct, err := duckdbDirect(ctx, path, out.TrainingSQL)
		if err != nil {
			return fmt.Errorf("scale %g: DuckDB on its file: %w", scale, err)
		}
		direct.name = fmt.Sprintf("DuckDB runs the plan's SQL, scale %g", scale)
		direct.print()
		feat := result{name: fmt.Sprintf("engine feature engineering, scale %g", scale), rows: examples, bytes: direct.bytes, secs: r.FeatureSeconds,
			heapMB: heap, rssMB: rss, limit: "DuckDB on its file"}
		feat.ratio = (float64(feat.rows) / feat.secs) / (float64(direct.rows) / direct.secs)
		feat.print()
		trainRow := result{name: fmt.Sprintf("  XGBoost training, scale %g", scale), rows: int64(r.TrainRows),
			bytes: int64(r.TrainRows) * int64(r.NumFeatures) * 4, secs: r.TrainSeconds}
		trainRow.print()
		fmt.Printf("  scale %g: %d examples × %d features, %d anchors, best iteration %d; test AUROC %.4f (last-window baseline %.4f)\n",
			scale, examples, r.NumFeatures, r.Anchors, r.BestIteration, r.Test.AUROC, r.BaselineRecentCount.AUROC)

		stages, err := jobStages(ctx, filepath.Join(dir, fmt.Sprintf("stack-%g", scale)), binDir, wh)
		if err != nil {
			return fmt.Errorf("scale %g: job: %w", scale, err)
		}
		e2e = append(e2e, stageRow{scale, stages})
	}
	fmt.Println("\njob from submit to written predictions (control plane, agent and engine as processes over mTLS):")
	for _, row := range e2e {
		fmt.Printf("  scale %g: %s\n", row.scale, strings.Join(row.stages, ", "))
	}
	fmt.Println("  (the training's overhead over XGBoost's C API on an identical matrix: go test -bench TrainVsCAPI ./engine/xgboost, run by make bench)")
	return nil
}

// demoInput reads the tables the demo query needs into a train.Input.
func demoInput(ctx context.Context, c *connectors.Conn) (train.Input, func(), error) {
	tables, err := c.Tables(ctx)
	if err != nil {
		return train.Input{}, nil, err
	}
	g := connectors.Graph(tables)
	q, err := pql.Parse(demoQuery)
	if err != nil {
		return train.Input{}, nil, err
	}
	in := train.Input{JobID: "bench", Query: demoQuery, Tables: map[string]train.Table{}}
	var all []arrow.RecordBatch
	release := func() {
		for _, r := range all {
			r.Release()
		}
	}
	for _, n := range pql.RequiredTables(q, &g) {
		meta, _ := g.Table(n)
		r, err := c.Read(ctx, n, connectors.ReadOptions{})
		if err != nil {
			release()
			return in, nil, err
		}
		var recs []arrow.RecordBatch
		for r.Next() {
			rec := r.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		err = r.Err()
		r.Release()
		all = append(all, recs...)
		if err != nil {
			release()
			return in, nil, err
		}
		in.Tables[n] = train.Table{Meta: *meta, Records: recs}
	}
	return in, release, nil
}

// duckdbDirect runs query on the DuckDB file and drains its Arrow result.
func duckdbDirect(ctx context.Context, path, query string) (result, error) {
	var res result
	var err error
	res.heapMB, res.rssMB, err = peak(func() error {
		return withDuckDBArrow(ctx, path+"?access_mode=read_only", func(ar *duckdbdrv.Arrow) error {
			start := time.Now()
			r, err := ar.QueryContext(ctx, query)
			if err != nil {
				return err
			}
			defer r.Release()
			res.rows, res.bytes, err = drain(r)
			res.secs = time.Since(start).Seconds()
			return err
		})
	})
	return res, err
}

// withDuckDBArrow opens a DuckDB file (dsn: path and options) on one
// connection and runs fn with its Arrow interface.
func withDuckDBArrow(ctx context.Context, dsn string, fn func(*duckdbdrv.Arrow) error) error {
	conn, err := duckdbdrv.NewConnector(dsn, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	dc, err := conn.Connect(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	ar, err := duckdbdrv.NewArrowFromConn(dc)
	if err != nil {
		return err
	}
	return fn(ar)
}

// jobStages runs the demo query as a job through the three processes and
// returns the seconds each state took, from submit to written predictions.
func jobStages(ctx context.Context, dir, binDir, wh string) ([]string, error) {
	stack, err := devstack.Start(ctx, devstack.Options{BinDir: binDir, Dir: dir, Warehouse: wh})
	if err != nil {
		return nil, err
	}
	defer stack.Stop()
	start := time.Now()
	job, err := stack.Client.Submit(ctx, demoQuery, "churn_predictions")
	if err != nil {
		return nil, err
	}
	var d *api.JobDetail
	for {
		if d, err = stack.Client.Get(ctx, job.ID); err != nil {
			return nil, err
		}
		if d.Job.State.Terminal() {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	total := time.Since(start)
	if d.Job.State != api.StateSucceeded {
		return nil, fmt.Errorf("job %s %s", job.ID, d.Job.State)
	}
	var out []string
	for i := 0; i+1 < len(d.History); i++ {
		out = append(out, fmt.Sprintf("%s %.2fs", d.History[i].State, d.History[i+1].At.Sub(d.History[i].At).Seconds()))
	}
	return append(out, fmt.Sprintf("total %.2fs", total.Seconds())), nil
}
