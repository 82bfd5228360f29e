package demodata

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// auroc returns the area under the ROC curve of scores for binary labels
// (the probability that a random positive outranks a random negative, ties
// counting one half).
func auroc(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var pos, neg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // 1-based average rank of the tie group
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				pos++
				rankSum += avg
			}
		}
		i = j
	}
	neg = float64(len(idx)) - pos
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

func TestAUROC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{"perfect", []float64{1, 2, 3, 4}, []bool{false, false, true, true}, 1},
		{"inverted", []float64{4, 3, 2, 1}, []bool{false, false, true, true}, 0},
		{"all tied", []float64{1, 1, 1, 1}, []bool{false, true, false, true}, 0.5},
		{"one swap", []float64{1, 2, 3, 4}, []bool{false, true, false, true}, 0.75},
	} {
		if got := auroc(tc.scores, tc.labels); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: auroc %v, want %v", tc.name, got, tc.want)
		}
	}
}

// signalExample is one (customer, anchor) pair of the demo query.
type signalExample struct {
	label                 bool // no order in the 30 days after the anchor
	c30, c90, cPrior      int
	exposure              float64 // days of the prior window the customer existed
	returns90             int
	daysSinceLast, tenure float64
}

func signalExamples(t *testing.T, s *collectSink, anchors int) []signalExample {
	t.Helper()
	const day = float64(microsPerDay)
	signup := map[int64]int64{}
	for i, id := range s.ints[TableCustomers]["customer_id"] {
		signup[id] = s.ints[TableCustomers]["signup_at"][i]
	}
	orders := map[int64][]int64{}
	var last int64
	for i, c := range s.ints[TableOrders]["customer_id"] {
		at := s.ints[TableOrders]["ordered_at"][i]
		orders[c] = append(orders[c], at)
		last = max(last, at)
	}
	rets := map[int64][]int64{}
	for i, c := range s.ints[TableReturns]["customer_id"] {
		rets[c] = append(rets[c], s.ints[TableReturns]["returned_at"][i])
	}
	ids := slices.Sorted(func(yield func(int64) bool) {
		for id := range signup {
			if !yield(id) {
				return
			}
		}
	})
	count := func(ts []int64, lo, hi float64) int { // in (lo, hi]
		n := 0
		for _, x := range ts {
			if float64(x) > lo && float64(x) <= hi {
				n++
			}
		}
		return n
	}
	var out []signalExample
	for k := 1; k <= anchors; k++ {
		a := float64(last) - float64(k)*30*day
		for _, id := range ids {
			ts := orders[id]
			c90 := count(ts, a-90*day, a)
			if c90 == 0 {
				continue
			}
			e := signalExample{
				label:     count(ts, a, a+30*day) == 0,
				c30:       count(ts, a-30*day, a),
				c90:       c90,
				cPrior:    count(ts, a-395*day, a-30*day),
				exposure:  math.Min(365, math.Max(0, (a-30*day-float64(signup[id]))/day)),
				returns90: count(rets[id], a-90*day, a),
				tenure:    (a - float64(signup[id])) / day,
			}
			lastAt := int64(0)
			for _, x := range ts {
				if float64(x) <= a {
					lastAt = x
				}
			}
			e.daysSinceLast = (a - float64(lastAt)) / day
			out = append(out, e)
		}
	}
	return out
}

// TestChurnSignal checks, without the engine, that the data holds a churn
// signal the naive baseline misses: a hand-made score from the customer's own
// order rate, how overdue the next order is, and the recent return rate must
// rank the demo query's labels better than "orders in the last 30 days".
func TestChurnSignal(t *testing.T) {
	for _, tc := range []struct {
		seed      uint64
		minMargin float64
	}{
		{1, 0.03},
		{2, 0.03},
	} {
		t.Run(fmt.Sprint("seed ", tc.seed), func(t *testing.T) {
			s, _ := generate(t, Config{Scale: 0.2, Seed: tc.seed})
			ex := signalExamples(t, s, 6)
			labels := make([]bool, len(ex))
			baseline := make([]float64, len(ex))
			hand := make([]float64, len(ex))
			pos := 0
			for i, e := range ex {
				labels[i] = e.label
				if e.label {
					pos++
				}
				baseline[i] = -float64(e.c30)
				hand[i] = handScore(e)
			}
			rate := float64(pos) / float64(len(ex))
			if len(ex) < 5000 || rate < 0.1 || rate > 0.4 {
				t.Fatalf("%d examples, positive rate %.3f: want >= 5000 and 0.1-0.4", len(ex), rate)
			}
			b, h := auroc(baseline, labels), auroc(hand, labels)
			t.Logf("%d examples, %.1f%% positive: AUROC baseline %.3f, hand-made %.3f", len(ex), 100*rate, b, h)
			if h < b+tc.minMargin {
				t.Errorf("hand-made AUROC %.3f does not beat the baseline's %.3f by %.2f", h, b, tc.minMargin)
			}
		})
	}
}

// handScore is a churn score a person could write: the number of orders
// expected in the next 30 days from the customer's own mean gap, discounted
// when the customer is overdue (the current gap exceeds 1.5 mean gaps: gap
// widening), plus the share of recent orders that were returned.
func handScore(e signalExample) float64 {
	g := ownGap(e)
	overdue := e.daysSinceLast / g
	expected := 30 / g * math.Exp(-math.Max(0, overdue-1.5))
	return -expected + float64(e.returns90)/float64(e.c90)
}

// ownGap is the customer's mean gap between orders over the year before the
// last 30 days (or over the last 90 days for a new customer).
func ownGap(e signalExample) float64 {
	if e.exposure >= 30 && e.cPrior > 0 {
		return e.exposure / float64(e.cPrior)
	}
	return math.Min(90, math.Max(e.tenure, 1)) / float64(e.c90)
}
