package train

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/engine/memdb"
	"github.com/ferry-ai/ferry/engine/plan"
	"github.com/ferry-ai/ferry/engine/pql"
)

// split holds one split's examples as a dense matrix.
type split struct {
	name string
	rows int
	x    []float32 // rows × cols, row-major; NaN is missing
	// y is the label: 0 or 1, the number, or the class index (-1 for a
	// class the training examples do not have).
	y []float32
	// base is the baseline forecast in label terms (NaN: none).
	base   []float64
	anchor []int64 // anchor time, microseconds
	// bucket is a hash of the entity's key, 0 to 99 (splitByEntity).
	bucket []uint8
	// groups are a ranking's query groups: the sizes of consecutive row
	// runs, one per example (recommendation only).
	groups []uint32
	// keys are the entity keys (score split only).
	keys arrow.Array
}

func (s *split) purge() {
	clear(s.x)
	clear(s.y)
	clear(s.base)
	clear(s.anchor)
	clear(s.bucket)
	if s.keys != nil {
		s.keys.Release()
		s.keys = nil
	}
}

// trainingTable is the plan's result as matrices.
type trainingTable struct {
	task    string
	names   []string // feature names
	cols    int
	classes []string // multiclass: the class of each label index
	topK    int      // recommendation: k of RANK TOP k
	keyType arrow.DataType
	train   *split
	val     *split
	test    *split
	score   *split
}

func (tt *trainingTable) splits() []*split { return []*split{tt.train, tt.val, tt.test, tt.score} }

func (tt *trainingTable) purge() {
	for _, s := range tt.splits() {
		s.purge()
	}
}

// checkLabels requires two classes among the training and the evaluation
// labels of a classification, and two distinct training values of a
// regression.
func (tt *trainingTable) checkLabels() error {
	switch tt.task {
	case pql.TaskBinaryClassification:
		for _, s := range []*split{tt.train, tt.val, tt.test} {
			pos := 0
			for _, v := range s.y {
				if v > 0 {
					pos++
				}
			}
			if pos == 0 || pos == s.rows {
				return fmt.Errorf("every %s label is %v (%d examples), so a model cannot be trained and evaluated: %w", s.name, pos > 0, s.rows, ErrNoData)
			}
		}
	case pql.TaskMulticlassClassification:
		if len(tt.classes) < 2 {
			return fmt.Errorf("the training examples have %d class, so a classifier cannot be trained: %w", len(tt.classes), ErrNoData)
		}
	case pql.TaskRegression:
		if slices.Min(tt.train.y) == slices.Max(tt.train.y) {
			return fmt.Errorf("every training label is %v, so a regression cannot be trained: %w", tt.train.y[0], ErrNoData)
		}
	}
	return nil
}

// Columns of the plan's training table before the features.
const (
	colSplit = iota
	colAnchor
	colEntity
	colLabel
	colBaseline
	firstFeature
)

// readTable runs the plan's SQL and reads its rows into matrices: doubles
// as they are, text features as category codes learned from the training
// examples (unseen or null: NaN), multiclass labels as class indexes.
func readTable(ctx context.Context, db *memdb.DB, query string, p *plan.Plan, mem memory.Allocator) (*trainingTable, error) {
	r, err := db.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	tt := &trainingTable{task: p.Task, cols: len(p.Features),
		train: &split{name: "training"}, val: &split{name: "validation"}, test: &split{name: "test"}, score: &split{name: "score"}}
	ok := false
	defer func() {
		if !ok {
			tt.purge()
		}
	}()
	for _, f := range p.Features {
		tt.names = append(tt.names, f.Name)
	}
	bySplit := map[string]*split{string(plan.Train): tt.train, string(plan.Validation): tt.val, string(plan.Test): tt.test, string(plan.Score): tt.score}
	// Text values wait until the training vocabulary is known.
	type textCell struct {
		s   *split
		row int
		col int
		v   string
	}
	var texts, labels, baselines []textCell
	var keySlices []arrow.Array
	defer func() {
		for _, k := range keySlices {
			k.Release()
		}
	}()
	multiclass := p.Task == pql.TaskMulticlassClassification
	for r.Next() {
		rec := r.RecordBatch()
		if int(rec.NumCols()) != firstFeature+tt.cols {
			return nil, fmt.Errorf("the plan's result has %d columns, want %d", rec.NumCols(), firstFeature+tt.cols)
		}
		if tt.keyType == nil {
			tt.keyType = rec.Column(colEntity).DataType()
		}
		runStart := -1
		for i := 0; i < int(rec.NumRows()); i++ {
			name, _ := str(rec.Column(colSplit), i)
			s := bySplit[name]
			if s == nil {
				return nil, fmt.Errorf("row %d: unknown split %q", i, name)
			}
			if s == tt.score && runStart < 0 {
				runStart = i
			}
			if s != tt.score && runStart >= 0 {
				keySlices = append(keySlices, array.NewSlice(rec.Column(colEntity), int64(runStart), int64(i)))
				runStart = -1
			}
			row := s.rows
			s.rows++
			us, _ := micros(rec.Column(colAnchor), i)
			s.anchor = append(s.anchor, us)
			s.bucket = append(s.bucket, keyBucket(rec.Column(colEntity), i))
			if multiclass {
				v, ok := str(rec.Column(colLabel), i)
				if ok {
					labels = append(labels, textCell{s: s, row: row, v: v})
				}
				s.y = append(s.y, -1)
				b, ok := str(rec.Column(colBaseline), i)
				if ok {
					baselines = append(baselines, textCell{s: s, row: row, v: b})
				}
				s.base = append(s.base, math.NaN())
			} else {
				v, ok := num(rec.Column(colLabel), i)
				if !ok {
					v = math.NaN()
				}
				s.y = append(s.y, float32(v))
				b, ok := num(rec.Column(colBaseline), i)
				if !ok {
					b = math.NaN()
				}
				s.base = append(s.base, b)
			}
			for j := 0; j < tt.cols; j++ {
				c := rec.Column(firstFeature + j)
				if p.Features[j].Text {
					if v, ok := str(c, i); ok {
						texts = append(texts, textCell{s: s, row: row, col: j, v: v})
					}
					s.x = append(s.x, float32(math.NaN()))
					continue
				}
				v, ok := num(c, i)
				if !ok {
					v = math.NaN()
				}
				s.x = append(s.x, float32(v))
			}
		}
		if runStart >= 0 {
			keySlices = append(keySlices, array.NewSlice(rec.Column(colEntity), int64(runStart), rec.NumRows()))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	// Category codes: the training examples' values, in sorted order.
	vocab := make([]map[string]float32, tt.cols)
	for _, c := range texts {
		if c.s == tt.train {
			if vocab[c.col] == nil {
				vocab[c.col] = map[string]float32{}
			}
			vocab[c.col][c.v] = 0
		}
	}
	for _, m := range vocab {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			m[k] = float32(i)
		}
	}
	for _, c := range texts {
		if code, ok := vocab[c.col][c.v]; ok {
			c.s.x[c.row*tt.cols+c.col] = code
		}
	}
	if multiclass {
		seen := map[string]bool{}
		for _, c := range labels {
			if c.s == tt.train {
				seen[c.v] = true
			}
		}
		for k := range seen {
			tt.classes = append(tt.classes, k)
		}
		slices.Sort(tt.classes)
		index := map[string]float32{}
		for i, k := range tt.classes {
			index[k] = float32(i)
		}
		for _, c := range labels {
			if i, ok := index[c.v]; ok {
				c.s.y[c.row] = i
			}
		}
		for _, c := range baselines {
			if i, ok := index[c.v]; ok {
				c.s.base[c.row] = float64(i)
			}
		}
	}
	if len(keySlices) > 0 {
		keys, err := array.Concatenate(keySlices, mem)
		if err != nil {
			return nil, fmt.Errorf("entity keys: %w", err)
		}
		tt.score.keys = keys
	}
	ok = true
	return tt, nil
}

// str returns a copy of a string cell: arrow-go's Value aliases the
// batch's buffer, which the query's reader frees when it moves on.
func str(a arrow.Array, i int) (string, bool) {
	if a.IsNull(i) {
		return "", false
	}
	switch c := a.(type) {
	case *array.String:
		return strings.Clone(c.Value(i)), true
	case *array.LargeString:
		return strings.Clone(c.Value(i)), true
	case *array.StringView:
		return strings.Clone(c.Value(i)), true
	}
	return "", false
}

// num returns a numeric or boolean cell as a float64.
func num(a arrow.Array, i int) (float64, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch c := a.(type) {
	case *array.Float64:
		return c.Value(i), true
	case *array.Float32:
		return float64(c.Value(i)), true
	case *array.Int8:
		return float64(c.Value(i)), true
	case *array.Int16:
		return float64(c.Value(i)), true
	case *array.Int32:
		return float64(c.Value(i)), true
	case *array.Int64:
		return float64(c.Value(i)), true
	case *array.Uint8:
		return float64(c.Value(i)), true
	case *array.Uint16:
		return float64(c.Value(i)), true
	case *array.Uint32:
		return float64(c.Value(i)), true
	case *array.Uint64:
		return float64(c.Value(i)), true
	case *array.Boolean:
		if c.Value(i) {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// micros returns a timestamp cell in microseconds.
func micros(a arrow.Array, i int) (int64, bool) {
	c, ok := a.(*array.Timestamp)
	if !ok || c.IsNull(i) {
		return 0, false
	}
	v := int64(c.Value(i))
	switch c.DataType().(*arrow.TimestampType).Unit {
	case arrow.Second:
		return v * 1e6, true
	case arrow.Millisecond:
		return v * 1e3, true
	case arrow.Nanosecond:
		return v / 1e3, true
	}
	return v, true
}

// keyBucket hashes an entity key into 0..99 (FNV-1a of its text form), the
// same for the same key in every run.
func keyBucket(a arrow.Array, i int) uint8 {
	h := fnv.New32a()
	h.Write([]byte(a.ValueStr(i)))
	return uint8(h.Sum32() % 100)
}

// splitByEntity moves the training examples of a static target into the
// validation (buckets 70 to 84) and test (85 to 99) splits by their key's
// bucket.
func (tt *trainingTable) splitByEntity() {
	all := tt.train
	tt.train = &split{name: "training"}
	for i := 0; i < all.rows; i++ {
		to := tt.train
		switch b := all.bucket[i]; {
		case b >= 85:
			to = tt.test
		case b >= 70:
			to = tt.val
		}
		to.rows++
		to.x = append(to.x, all.x[i*tt.cols:(i+1)*tt.cols]...)
		to.y = append(to.y, all.y[i])
		to.base = append(to.base, all.base[i])
		to.anchor = append(to.anchor, all.anchor[i])
		to.bucket = append(to.bucket, all.bucket[i])
	}
	all.purge()
}
