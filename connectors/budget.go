package connectors

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/util"
)

// Row width estimates for sizing batches under a memory budget. Variable
// width values are guessed at varWidthGuess bytes; nested values at
// nestedGuess. Batches are sized to half the budget so that a guess off by
// two still fits.
const (
	varWidthGuess = 32
	nestedGuess   = 128
)

// rowBytes returns the least bytes one row of these fields needs (fixed
// widths, offsets and validity) and an estimate including variable-width
// data.
func rowBytes(fields []arrow.Field) (least, estimate int64) {
	for _, f := range fields {
		l, e := fieldBytes(f.Type)
		least += l
		estimate += e
	}
	return least, estimate
}

func fieldBytes(dt arrow.DataType) (least, estimate int64) {
	const validity = 1 // a bit, rounded up to a byte per column per row
	switch t := dt.(type) {
	case arrow.FixedWidthDataType: // dictionaries too: their indices
		w := int64((t.BitWidth() + 7) / 8)
		return w + validity, w + validity
	case *arrow.StringType, *arrow.BinaryType:
		return 4 + validity, 4 + validity + varWidthGuess
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		return 8 + validity, 8 + validity + varWidthGuess
	case *arrow.StringViewType, *arrow.BinaryViewType:
		return 16 + validity, 16 + validity + varWidthGuess
	default:
		return validity, nestedGuess
	}
}

// budgetBatchSize returns the rows per batch that fit budget for a read of
// cols (all when empty) of t, never more than the caller's batchSize when
// one is set. A budget that cannot hold one row is refused.
func budgetBatchSize(t Table, cols []string, budget int64, batchSize int) (int, error) {
	fields := t.Schema.Fields()
	if len(cols) > 0 {
		fields = fields[:0:0]
		for _, c := range cols {
			if i := t.Schema.FieldIndices(c); len(i) > 0 {
				fields = append(fields, t.Schema.Field(i[0]))
			}
		}
	}
	least, estimate := rowBytes(fields)
	if least > budget {
		return 0, fmt.Errorf("memory budget of %d bytes cannot hold one row (at least %d bytes): %w", budget, least, ErrInvalidArgument)
	}
	rows := budget / 2 / max(estimate, 1)
	rows = max(rows, 1)
	if batchSize > 0 && int64(batchSize) < rows {
		return batchSize, nil
	}
	return int(min(rows, 1<<30)), nil
}

// budgetReader ends a read with ErrMemoryBudget when a batch holds more
// buffer bytes than the budget.
type budgetReader struct {
	array.RecordReader
	table  string
	budget int64
	err    error
}

func (b *budgetReader) Next() bool {
	if b.err != nil || !b.RecordReader.Next() {
		return false
	}
	if n := util.TotalRecordSize(b.RecordReader.RecordBatch()); n > b.budget {
		b.err = fmt.Errorf("read %q: a batch of %d rows holds %d bytes, over the memory budget of %d bytes (rows are wider than estimated: raise the budget or lower BatchSize): %w",
			b.table, b.RecordReader.RecordBatch().NumRows(), n, b.budget, ErrMemoryBudget)
		return false
	}
	return true
}

func (b *budgetReader) Err() error {
	if b.err != nil {
		return b.err
	}
	return b.RecordReader.Err()
}
