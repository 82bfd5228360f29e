// Package conformance holds the suite every connector passes against a real
// service (gocloud.dev drivertest style): the connector supplies a Harness,
// declares its Quirks as data, and calls Run from its own TestConformance.
// Every check uses a checked Arrow allocator and fails on leaked buffers.
//
// Optional harness interfaces widen the suite: SQLHarness (tables created
// by the warehouse's own SQL), Reopener (a second connection to the same
// database, for T9) and NetworkHarness (the suite's own listeners in front of
// the service, for L2, L3, L6 and R7). A check a connector cannot run is
// reported as not supported with its reason; the checks are named after
// ../shared/CONFORMANCE.md.
package conformance

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferry-ai/ferry/connectors"
)

// Harness gives the suite fresh connections to the service under test.
type Harness interface {
	// Open returns a connection to an empty, writable database or schema that
	// belongs to this test alone.
	Open(ctx context.Context, t *testing.T, opts *connectors.Options) *connectors.Conn
}

// Quirks declares what a connector supports and where it deviates.
type Quirks struct {
	// Name is the connector's name in the support matrix.
	Name string
	// SupportsConstraints: primary and foreign keys are declared and listed.
	SupportsConstraints bool
	// LargeRows is the row count of the bounded-memory streaming check; 0
	// skips it (CI sets it through the connector's test).
	LargeRows int64
	// UnmappableType is an Arrow type the connector cannot store (T18); nil
	// skips that check.
	UnmappableType arrow.DataType
	// Deviations are checks the connector does not pass, each with a reason.
	Deviations map[string]string

	rec *recorder // set by Run
}

// Run runs the suite.
func Run(t *testing.T, h Harness, q Quirks) {
	t.Helper()
	checks := []struct {
		name string
		fn   func(t *testing.T, h Harness, q Quirks)
	}{
		{"L1_OpenCloseTwice", testOpenClose},
		{"L4_ConcurrentReaders", testConcurrentReaders},
		{"L5_CloseDuringRead", testCloseDuringRead},
		{"L7_GoroutinesAfterClose", testGoroutinesAfterClose},
		{"L2_ConnectErrors", testConnectErrors},
		{"L3_ConnectDeadline", testConnectDeadline},
		{"L6_ReconnectAfterRestart", testReconnect},
		{"M6_OddNames", testOddNames},
		{"M1_M5_Metadata", testMetadata},
		{"M7_MissingNames", testMissingNames},
		{"T_W11_RoundTripWithNulls", testRoundTrip},
		{"T2_Floats", testFloats},
		{"T9_TimeZones", testTimeZones},
		{"T5_Strings", testStrings},
		{"T8_Timestamps", testTimestamps},
		{"T14_AllNull", testAllNull},
		{"T15_ZeroRows", testZeroRows},
		{"T16_WideTable", testWideTable},
		{"T17_Dictionary", testDictionary},
		{"T17_RunEndEncoded", testRunEndEncoded},
		{"T18_Unmappable", testUnmappable},
		{"T10_T11_TimeInterval", testColumns("tod", "iv")},
		{"T12_Lists", testColumns("xs", "strs")},
		{"T13_Structs", testColumns("st")},
		{"R2_Projection", testProjection},
		{"R3_TimeRange", testTimeRange},
		{"R4_Limit", testLimit},
		{"R8_EmptyResult", testEmptyResult},
		{"R5_BatchSize", testBatchSize},
		{"R6_W6_X2_BoundedMemory", testBoundedMemory},
		{"R7_TruncatedStream", testTruncatedStream},
		{"R9_SnapshotRead", testSnapshotRead},
		{"X3_MemoryBudget", testMemoryBudget},
		{"R10_HostileNames", testHostileNames},
		{"K1_K4_CancelBeforeFirstNoLeak", testCancelBeforeFirstAndLeaks},
		{"K2_CancelMidStream", testCancel},
		{"K5_CancelledWriteKeepsOld", testCancelledWrite},
		{"W1_W13_CreateNoDebris", testCreateAndNoDebris},
		{"W2_AtomicReplace", testAtomicReplace},
		{"W3_IdempotentRewrite", testIdempotentRewrite},
		{"W4_FailedWriteKeepsOld", testFailedWriteKeepsOld},
		{"W9_W10_ConcurrentWriters", testConcurrentWriters},
		{"W5_W12_W15_Predictions", testPredictionsTable},
	}
	rec := newRecorder(q.Name)
	q.rec = rec
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			defer rec.record(t, c.name)
			if reason, ok := q.Deviations[c.name]; ok {
				if reason == "" {
					t.Fatalf("deviation %s declared without a reason", c.name)
				}
				notSupported(t, q, "deviation: "+reason)
			}
			c.fn(t, h, q)
		})
	}
	for name := range q.Deviations {
		if !rec.known(name, checks) {
			t.Errorf("deviation %q names no check", name)
		}
	}
	if err := rec.flush(); err != nil {
		t.Errorf("support matrix: %v", err)
	}
}
