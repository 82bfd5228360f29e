package plan

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// SplitSchedule places anchors every Step: training anchors step back from
// ValidationStart − Step to Begin; validation anchors step forward from
// ValidationStart while their window ends by TestStart (at most MaxEval of
// them); test anchors step forward from TestStart while their window ends by
// End (at most MaxEval). With Score set, one score anchor at End is added.
// This is RelBench's temporal split: a model is tuned only on windows that
// close before the test period begins.
type SplitSchedule struct {
	Begin, End                 time.Time
	ValidationStart, TestStart time.Time
	Step                       time.Duration
	MaxEval                    int // 0 means no limit
	Score                      bool
}

// Anchors returns the schedule's anchors, training ones latest first.
func (s SplitSchedule) Anchors() ([]Anchor, error) {
	switch {
	case s.Step <= 0:
		return nil, errors.New("plan: schedule step must be positive")
	case !s.ValidationStart.Before(s.TestStart):
		return nil, fmt.Errorf("plan: validation start %s is not before test start %s", s.ValidationStart.Format(time.DateOnly), s.TestStart.Format(time.DateOnly))
	case s.TestStart.Add(s.Step).After(s.End):
		return nil, fmt.Errorf("plan: no test window fits between %s and %s", s.TestStart.Format(time.DateOnly), s.End.Format(time.DateOnly))
	}
	var out []Anchor
	for t := s.ValidationStart.Add(-s.Step); !t.Before(s.Begin); t = t.Add(-s.Step) {
		out = append(out, Anchor{Time: t, Split: Train})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("plan: no training anchor between %s and %s", s.Begin.Format(time.DateOnly), s.ValidationStart.Format(time.DateOnly))
	}
	forward := func(from, limit time.Time, split Split) {
		n := 0
		for t := from; !t.After(limit) && (s.MaxEval == 0 || n < s.MaxEval); t = t.Add(s.Step) {
			out = append(out, Anchor{Time: t, Split: split})
			n++
		}
	}
	forward(s.ValidationStart, s.TestStart.Add(-s.Step), Validation)
	forward(s.TestStart, s.End.Add(-s.Step), Test)
	if s.Score {
		out = append(out, Anchor{Time: s.End, Split: Score})
	}
	return out, nil
}

// LabelsSQL renders the query returning only split, anchor_time, entity_id
// and label of the kept labelled examples (no score rows, no features),
// ordered by split, anchor time and entity.
func (p *Plan) LabelsSQL(d Dialect) (string, error) {
	r := &renderer{p: p, d: d}
	var b strings.Builder
	if err := r.examples(&b); err != nil {
		return "", err
	}
	b.WriteString("\nSELECT split, anchor_time, entity_id, label FROM kept WHERE split <> 'score' ORDER BY split, anchor_time, entity_id")
	return b.String(), nil
}
