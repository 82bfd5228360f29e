//go:build demodata_explore

// Tools for tuning the generator, not run by default:
//
//	go test -tags demodata_explore -run Explore -v ./internal/demodata
//
// TestExploreEngine trains a small gradient-boosted tree model on engine-like
// features (those of engine/train) and compares its test AUROC with the
// baseline's; TestExploreComposition splits the demo query's examples by the
// customers' hidden state; TestExploreStats prints churn and return rates at
// Scale 1.

package demodata

import (
	"math"
	"sort"
	"testing"
)

type fev struct{ at, val, disc float64 }

// engineRows builds engine-like features for anchors k=first..last (k months
// back from the last order).
func engineRows(s *collectSink, first, last int) (x [][]float64, y []bool, base []float64) {
	const day = float64(microsPerDay)
	cust := s.ints[TableCustomers]
	ord := s.ints[TableOrders]
	ret := s.ints[TableReturns]
	idx := map[int64]int{}
	for i, id := range cust["customer_id"] {
		idx[id] = i
	}
	segs := map[string]float64{}
	code := func(v string) float64 {
		if c, ok := segs[v]; ok {
			return c
		}
		segs[v] = float64(len(segs))
		return segs[v]
	}
	n := len(cust["customer_id"])
	orders := make([][]fev, n)
	rets := make([][]fev, n)
	var lastT float64
	for i, c := range ord["customer_id"] {
		at := float64(ord["ordered_at"][i])
		orders[idx[c]] = append(orders[idx[c]], fev{at, s.floats[TableOrders]["amount"][i], float64(ord["discount_used"][i])})
		lastT = math.Max(lastT, at)
	}
	for i, c := range ret["customer_id"] {
		rets[idx[c]] = append(rets[idx[c]], fev{float64(ret["returned_at"][i]), s.floats[TableReturns]["refund_amount"][i], 0})
	}
	feats := func(evs []fev, a float64, row []float64, withDisc bool) []float64 {
		cnt := func(w float64) float64 {
			k := 0
			for _, e := range evs {
				if e.at <= a && (w < 0 || e.at > a-w*day) {
					k++
				}
			}
			return float64(k)
		}
		for _, w := range []float64{7, 30, 90, 365, -1} {
			row = append(row, cnt(w))
		}
		for _, w := range []float64{30, 90, -1} {
			var sv, sd, k float64
			for _, e := range evs {
				if e.at <= a && (w < 0 || e.at > a-w*day) {
					sv += e.val
					sd += e.disc
					k++
				}
			}
			mv, md := math.NaN(), math.NaN()
			if k > 0 {
				mv, md = sv/k, sd/k
			}
			row = append(row, sv, mv)
			if withDisc {
				row = append(row, sd, md)
			}
		}
		lastE, firstE := math.NaN(), math.NaN()
		for _, e := range evs {
			if e.at <= a {
				if math.IsNaN(firstE) {
					firstE = (a - e.at) / day
				}
				lastE = (a - e.at) / day
			}
		}
		c30, c90 := cnt(30), cnt(90)
		r := math.NaN()
		if c90 > 0 {
			r = c30 / c90
		}
		return append(row, lastE, firstE, r)
	}
	for k := first; k <= last; k++ {
		a := lastT - float64(k)*30*day
		for i := 0; i < n; i++ {
			c90, next := 0, 0
			for _, e := range orders[i] {
				if e.at <= a && e.at > a-90*day {
					c90++
				}
				if e.at > a && e.at <= a+30*day {
					next++
				}
			}
			if c90 == 0 {
				continue
			}
			row := []float64{code(s.strs[TableCustomers]["country"][i]), code(s.strs[TableCustomers]["segment"][i]),
				code(s.strs[TableCustomers]["acquisition_channel"][i]), float64(cust["marketing_opt_in"][i]),
				(a - float64(cust["signup_at"][i])) / day}
			row = feats(orders[i], a, row, true)
			row = feats(rets[i], a, row, false)
			x = append(x, row)
			y = append(y, next == 0)
			c30 := 0
			for _, e := range orders[i] {
				if e.at <= a && e.at > a-30*day {
					c30++
				}
			}
			base = append(base, -float64(c30))
		}
	}
	return
}

// gbdt is a minimal histogram gradient-boosted tree model (logistic loss),
// to estimate what the engine can learn.
type gbdt struct {
	edges [][]float64
	trees [][]node
	lr    float64
}

type node struct {
	feat       int
	bin        int // go left if bin <= this
	nanLeft    bool
	left, righ int
	leaf       bool
	val        float64
}

func (g *gbdt) binOf(f int, v float64) int {
	if math.IsNaN(v) {
		return -1
	}
	return sort.SearchFloat64s(g.edges[f], v)
}

func fitGBDT(x [][]float64, y []bool, rounds, depth int) *gbdt {
	nf := len(x[0])
	g := &gbdt{lr: 0.1}
	bins := make([][]int, len(x))
	for f := 0; f < nf; f++ {
		var vals []float64
		for _, r := range x {
			if !math.IsNaN(r[f]) {
				vals = append(vals, r[f])
			}
		}
		sort.Float64s(vals)
		var e []float64
		for q := 1; q < 32; q++ {
			if len(vals) == 0 {
				break
			}
			v := vals[q*len(vals)/32]
			if len(e) == 0 || v > e[len(e)-1] {
				e = append(e, v)
			}
		}
		g.edges = append(g.edges, e)
	}
	for i, r := range x {
		bins[i] = make([]int, nf)
		for f := range nf {
			bins[i][f] = g.binOf(f, r[f])
		}
	}
	pred := make([]float64, len(x))
	grad := make([]float64, len(x))
	hess := make([]float64, len(x))
	for range rounds {
		for i := range x {
			p := 1 / (1 + math.Exp(-pred[i]))
			t := 0.0
			if y[i] {
				t = 1
			}
			grad[i], hess[i] = p-t, p*(1-p)
		}
		var tree []node
		var grow func(rows []int, d int) int
		grow = func(rows []int, d int) int {
			var G, H float64
			for _, i := range rows {
				G += grad[i]
				H += hess[i]
			}
			id := len(tree)
			tree = append(tree, node{leaf: true, val: -G / (H + 1)})
			if d == depth || len(rows) < 100 {
				return id
			}
			best, bf, bb, bnl := 0.0, -1, 0, false
			for f := 0; f < nf; f++ {
				nb := len(g.edges[f]) + 1
				gs := make([]float64, nb)
				hs := make([]float64, nb)
				var gn, hn float64
				for _, i := range rows {
					b := bins[i][f]
					if b < 0 {
						gn += grad[i]
						hn += hess[i]
						continue
					}
					gs[b] += grad[i]
					hs[b] += hess[i]
				}
				var gl, hl float64
				for b := 0; b < nb-1; b++ {
					gl += gs[b]
					hl += hs[b]
					for _, nl := range []bool{false, true} {
						GL, HL := gl, hl
						if nl {
							GL, HL = gl+gn, hl+hn
						}
						GR, HR := G-GL, H-HL
						if HL < 5 || HR < 5 {
							continue
						}
						gain := GL*GL/(HL+1) + GR*GR/(HR+1) - G*G/(H+1)
						if gain > best {
							best, bf, bb, bnl = gain, f, b, nl
						}
					}
				}
			}
			if bf < 0 {
				return id
			}
			var L, R []int
			for _, i := range rows {
				b := bins[i][bf]
				if (b < 0 && bnl) || (b >= 0 && b <= bb) {
					L = append(L, i)
				} else {
					R = append(R, i)
				}
			}
			tree[id].leaf = false
			tree[id].feat, tree[id].bin, tree[id].nanLeft = bf, bb, bnl
			l := grow(L, d+1)
			r := grow(R, d+1)
			tree[id].left, tree[id].righ = l, r
			return id
		}
		all := make([]int, len(x))
		for i := range all {
			all[i] = i
		}
		grow(all, 0)
		g.trees = append(g.trees, tree)
		for i := range x {
			pred[i] += g.lr * g.eval(tree, bins[i])
		}
	}
	return g
}

func (g *gbdt) eval(tree []node, b []int) float64 {
	n := 0
	for !tree[n].leaf {
		nd := tree[n]
		v := b[nd.feat]
		if (v < 0 && nd.nanLeft) || (v >= 0 && v <= nd.bin) {
			n = nd.left
		} else {
			n = nd.righ
		}
	}
	return tree[n].val
}

func (g *gbdt) predict(r []float64) float64 {
	b := make([]int, len(r))
	for f := range r {
		b[f] = g.binOf(f, r[f])
	}
	s := 0.0
	for _, t := range g.trees {
		s += g.lr * g.eval(t, b)
	}
	return s
}

// TestExploreEngine mirrors engine/train's split: eight training anchors,
// one held out (validation there, unused here), the last full window as the
// test set.
func TestExploreEngine(t *testing.T) {
	for _, cfg := range []Config{{Scale: 0.4, Seed: 1}, {Scale: 0.4, Seed: 2}, {Scale: 1, Seed: 1}} {
		seed := cfg.Seed
		s, sum := generate(t, cfg)
		xtr, ytr, _ := engineRows(s, 3, 10)
		xte, yte, bte := engineRows(s, 1, 1)
		g := fitGBDT(xtr, ytr, 150, 3)
		p := make([]float64, len(xte))
		for i, r := range xte {
			p[i] = g.predict(r)
		}
		pos := 0
		for _, v := range yte {
			if v {
				pos++
			}
		}
		t.Logf("scale %g seed %d churners %d/%d train %d test %d (%.1f%% pos): model AUROC %.3f baseline %.3f",
			cfg.Scale, seed, sum.Churners, sum.Customers, len(xtr), len(xte), 100*float64(pos)/float64(len(yte)), auroc(p, yte), auroc(bte, yte))
	}
}

func TestExploreComposition(t *testing.T) {
	cfg, _ := Config{Scale: 0.4}.withDefaults()
	d, err := build(t.Context(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for _, c := range d.custs {
		for _, o := range c.orders {
			last = max(last, o.at)
		}
	}
	type agg struct{ n, pos, c30zero, c30zeroPos int }
	groups := map[string]*agg{}
	for k := 1; k <= 6; k++ {
		a := last - int64(k)*30*microsPerDay
		for _, c := range d.custs {
			c90, c30, next := 0, 0, 0
			lastSeq := -1
			for i, o := range c.orders {
				if o.at <= a && o.at > a-90*microsPerDay {
					c90++
				}
				if o.at <= a && o.at > a-30*microsPerDay {
					c30++
				}
				if o.at > a && o.at <= a+30*microsPerDay {
					next++
				}
				if o.at <= a {
					lastSeq = i
				}
			}
			if c90 == 0 {
				continue
			}
			state := "active"
			if c.churned && lastSeq == len(c.orders)-1 {
				state = "stopped"
			} else if c.orders[lastSeq].progress > 0 || (lastSeq+1 < len(c.orders) && c.orders[lastSeq+1].progress > 0) || (c.churned && lastSeq+1 < len(c.orders)) {
				state = "declining"
			}
			g := groups[state]
			if g == nil {
				g = &agg{}
				groups[state] = g
			}
			g.n++
			if next == 0 {
				g.pos++
			}
			if c30 == 0 {
				g.c30zero++
				if next == 0 {
					g.c30zeroPos++
				}
			}
		}
	}
	for _, s := range []string{"active", "declining", "stopped"} {
		g := groups[s]
		if g == nil {
			continue
		}
		t.Logf("%-9s n=%6d pos=%6d (%.2f) c30=0: %6d of which pos %6d", s, g.n, g.pos, float64(g.pos)/float64(g.n), g.c30zero, g.c30zeroPos)
	}
}

func TestExploreStats(t *testing.T) {
	cfg, _ := Config{Scale: 1}.withDefaults()
	d, err := build(t.Context(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	var orders, rets, canc, oneTime, churned, react int
	byCh := map[string][2]int{}
	bySeg := map[string][2]int{}
	for _, c := range d.custs {
		orders += len(c.orders)
		rets += len(c.returns)
		for _, o := range c.orders {
			if o.status == statusCancelled {
				canc++
			}
		}
		if c.reactivations > 0 {
			react++
		}
		if c.churned && len(c.orders) == 1 {
			oneTime++
		}
		ch, sg := byCh[d.p.v.channels[c.channel]], bySeg[d.p.v.segments[c.segment]]
		ch[1]++
		sg[1]++
		if c.churned {
			churned++
			ch[0]++
			sg[0]++
		}
		byCh[d.p.v.channels[c.channel]], bySeg[d.p.v.segments[c.segment]] = ch, sg
	}
	n := float64(len(d.custs))
	t.Logf("customers %d churned %.3f one-time %.3f reactivated %.3f orders %d returns/order %.3f cancelled %.3f",
		len(d.custs), float64(churned)/n, float64(oneTime)/n, float64(react)/n, orders, float64(rets)/float64(orders), float64(canc)/float64(orders))
	for _, k := range d.p.v.channels {
		t.Logf("channel %-15s churned %.3f", k, float64(byCh[k][0])/float64(byCh[k][1]))
	}
	for _, k := range d.p.v.segments {
		t.Logf("segment %-15s churned %.3f", k, float64(bySeg[k][0])/float64(bySeg[k][1]))
	}
}
