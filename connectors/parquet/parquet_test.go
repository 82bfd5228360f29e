package parquet_test

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferry-ai/ferry/conformance"
	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/connectors/parquet"
)

func newMux() *connectors.Mux {
	mux := connectors.NewMux()
	mux.Register(parquet.FileScheme, parquet.FileOpener{})
	mux.Register(parquet.S3Scheme, parquet.S3Opener{})
	return mux
}

type fileHarness struct{}

func (fileHarness) Open(ctx context.Context, t *testing.T, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	c, err := newMux().Open(ctx, "file://"+t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Reopen implements conformance.Reopener.
func (fileHarness) Reopen(ctx context.Context, t *testing.T, c *connectors.Conn, opts *connectors.Options) *connectors.Conn {
	t.Helper()
	c2, err := newMux().Open(ctx, c.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c2
}

func largeRows() int64 {
	if testing.Short() {
		return 1_000_000
	}
	return 10_000_000
}

func quirks(name string) conformance.Quirks {
	return conformance.Quirks{Name: name, SupportsConstraints: true, LargeRows: largeRows(),
		UnmappableType: arrow.FixedWidthTypes.MonthDayNanoInterval,
		Deviations: map[string]string{
			"T10_T11_TimeInterval": "Parquet INTERVAL is unsigned months/days/millis: month_day_nano_interval is refused (T18); time of day round-trips (TestTypesRoundTrip)",
		}}
}

func TestConformanceFile(t *testing.T) {
	conformance.Run(t, fileHarness{}, quirks("parquet-file"))
}
