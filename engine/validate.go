package engine

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// validateBatch checks that a received batch's buffers hold what its
// lengths and offsets promise, so that a malformed upload is refused with
// an error naming the column instead of failing later inside training.
func validateBatch(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if err := validateData(col.Data()); err != nil {
			return fmt.Errorf("column %q: %w", rec.Schema().Field(i).Name, err)
		}
		if v, ok := col.(interface{ ValidateFull() error }); ok {
			if err := v.ValidateFull(); err != nil {
				return fmt.Errorf("column %q: %w", rec.Schema().Field(i).Name, err)
			}
		}
	}
	return nil
}

// validateData checks that validity bitmaps cover their values,
// recursively. (Values buffers shorter than their length are refused by the
// IPC reader already: arrow-go panics building such an array, and the
// reader turns that into an error.)
func validateData(d arrow.ArrayData) error {
	if d.Offset() < 0 || d.Len() < 0 {
		return fmt.Errorf("negative offset %d or length %d", d.Offset(), d.Len())
	}
	n := int64(d.Offset() + d.Len())
	if bufs := d.Buffers(); d.NullN() > 0 && len(bufs) > 0 && bufs[0] != nil && int64(bufs[0].Len())*8 < n {
		return fmt.Errorf("validity bitmap of %d bytes for %d values", bufs[0].Len(), n)
	}
	for _, c := range d.Children() {
		if err := validateData(c); err != nil {
			return err
		}
	}
	return nil
}
