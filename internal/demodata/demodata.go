// Package demodata generates Ferry's demo warehouse: a deterministic
// e-commerce data set (customers, products, orders, order_items, returns)
// with a churn signal a model can learn and a naive rule cannot.
//
// # Tables
//
// Generate writes, in this order (parents before children, so a sink that
// enforces foreign keys accepts every table):
//
//	customers(customer_id PK, signup_at, country, segment, acquisition_channel, marketing_opt_in)
//	products(product_id PK, category, price, name)
//	orders(order_id PK, customer_id FK, ordered_at, status, amount, discount_used)
//	order_items(order_item_id PK, order_id FK, product_id FK, quantity, unit_price)
//	returns(return_id PK, order_id FK, customer_id FK, returned_at, reason, refund_amount)
//
// Timestamps are microseconds without a time zone, whole seconds, inside
// [Start, Start+Days]. IDs increase with time: customer_id with signup_at,
// order_id with ordered_at, return_id with returned_at.
//
// # The churn signal
//
// The demo query is
//
//	PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id
//	WHERE COUNT(orders.*, -90, 0, days) > 0
//
// Each customer is simulated alone, with its own generator:
//
//   - Signup: uniform over the window (except its last 14 days); the first
//     order follows after an exponential delay of half the mean gap.
//   - Order rate: a hidden mean gap between orders, lognormal with median
//     16 days × segment (standard 1, premium 0.85, business 0.7) and log-sd
//     1.4, clipped to [3, 120] days (quartiles about 6 and 41 days). Gaps
//     are gamma(shape 5) around it, so a customer is fairly regular but
//     customers differ a lot: a quiet month often only means a
//     low-frequency customer who will still order.
//   - Discounts: an order uses a discount with the customer's discount
//     propensity, 0.15–0.65 for customers who opted in to marketing and
//     0.03–0.28 otherwise; a discounted line costs 85% of the list price.
//   - Churn onset: after each order of an active customer, a decline starts
//     with probability 1 − exp(−h × next gap), h the hazard per day below.
//   - Decline: lasts 60–120 days; with p its progress from 0 to 1, gaps
//     widen to 1 + (w − 1) × max(0.5, p) times the mean gap (w drawn in
//     [2, 3]), the return probability rises by 0.2 × p, cancellations by
//     0.08 × p, discount use falls by the factor 1 − p, baskets shrink
//     (fewer items and lower quantities, cheaper products). At its end the
//     customer stops ordering.
//   - One-time buyers: after the first order, 5% × channel factor of
//     customers stop ordering.
//   - Win-back: a customer who stops comes back with probability
//     0.1 + 0.5 × discount propensity (× 0.6 without marketing opt-in),
//     75 days plus an exponential delay with mean 120 days after the last
//     order, as an active customer at its old rate whose return history is
//     forgotten; it may decline and stop again. A customer who does not come
//     back inside the window is a churner.
//
// The churn hazard per day:
//
//	h = 0.0011 × segment (standard 1, premium 0.55, business 0.8)
//	           × channel (organic_search 0.9, paid_search 1.1, paid_social 1.9,
//	                      referral 0.45, email 0.8, affiliate 1.4)
//	           × (1.6 − 1.4 × discount propensity)
//	           × (1 + 8 × share of the last 6 orders that were returned)
//
// Orders have 1 + Binomial(5, 0.45) items (fewer in a decline), mostly
// quantity 1; amount is the sum of quantity × unit_price. Status is
// "cancelled" for 3% (up to 11% in a decline), "shipped" in the window's
// last 4 days, "delivered" otherwise. A delivered order is returned with the
// customer's return propensity, 4–14% (up to 20 points more in a decline),
// 2 days plus an exponential 5-day delay after the order; returns after the
// window's end are dropped. The refund is one line's value, or the whole
// order's for a quarter of returns.
//
// At Scale 1 about 35% of customers are churners at the window's end (6%
// one-time buyers) and 5% came back after a stop; churners by channel range
// from about 20% (referral) to 49% (paid_social). The customer's own rate
// (counts over 365 days and all time), days since the last order, the
// 30/90-day count ratio, recent returns, amounts and discount use separate
// churners from slow buyers far better than the baseline "orders in the
// last 30 days". See docs/demo-data.md for figures.
package demodata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Config sizes and seeds the data set. The zero value of every field means
// its default.
type Config struct {
	// Scale sizes the data: 1 is about 10k customers and 1M order_items.
	// 0 means 1.
	Scale float64
	// Seed selects the data; the same Config yields identical tables.
	// 0 means 1.
	Seed uint64
	// Start is the beginning of the simulated window; zero means
	// 2024-01-01 00:00 UTC. Timestamps are written without a zone.
	Start time.Time
	// Days is the window's length; 0 means 730.
	Days int
	// BatchSize is the rows per Arrow batch; 0 means 65536.
	BatchSize int
	// Allocator for Arrow buffers; nil means memory.DefaultAllocator.
	Allocator memory.Allocator
}

// TableSummary is one written table and its row count.
type TableSummary struct {
	Name string
	Rows int64
}

// Summary reports what Generate wrote.
type Summary struct {
	// Tables in the order they were written.
	Tables []TableSummary
	// Customers is the number of customers.
	Customers int
	// Churners is the number of customers who stopped ordering (their
	// decline ended, or they bought once) inside the window and had not come
	// back by its end.
	Churners int
	// Reactivated is the number of customers who stopped and later ordered
	// again inside the window, at least once.
	Reactivated int
}

// Table names, in the order Generate writes them.
const (
	TableCustomers  = "customers"
	TableProducts   = "products"
	TableOrders     = "orders"
	TableOrderItems = "order_items"
	TableReturns    = "returns"
)

// Defaults applied by Generate.
const (
	DefaultDays      = 730
	DefaultBatchSize = 65536
	// CustomersPerScale is the number of customers at Scale 1.
	CustomersPerScale = 10_000
	// ProductsPerScale is the number of products at Scale 1 (at least 50).
	ProductsPerScale = 1_000
)

// DefaultStart is the default beginning of the window, 2024-01-01 UTC.
func DefaultStart() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

func (c Config) withDefaults() (Config, error) {
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Scale < 0 || math.IsNaN(c.Scale) || math.IsInf(c.Scale, 0) {
		return c, fmt.Errorf("demodata: scale %g: want a positive number", c.Scale)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart()
	}
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.Days < 30 {
		return c, fmt.Errorf("demodata: days %d: want at least 30", c.Days)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 0 {
		return c, fmt.Errorf("demodata: batch size %d: want a positive number", c.BatchSize)
	}
	if c.Allocator == nil {
		c.Allocator = memory.DefaultAllocator
	}
	return c, nil
}

// Schemas returns the five tables' metadata (columns, primary and foreign
// keys, time columns) in the order Generate writes them.
func Schemas() []graph.Table {
	specs := tableSpecs()
	out := make([]graph.Table, len(specs))
	for i, s := range specs {
		t := graph.Table{Name: s.name, PrimaryKey: s.opts.PrimaryKey, ForeignKeys: s.opts.ForeignKeys, TimeColumn: s.timeColumn}
		for _, f := range s.schema.Fields() {
			t.Columns = append(t.Columns, graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
		}
		out[i] = t
	}
	return out
}

type tableSpec struct {
	name       string
	schema     *arrow.Schema
	opts       connectors.WriteOptions
	timeColumn string
}

func tableSpecs() []tableSpec {
	ts := &arrow.TimestampType{Unit: arrow.Microsecond}
	pk := func(name string) arrow.Field { return arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64} }
	col := func(name string, t arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: true}
	}
	fk := func(col, ref string) graph.ForeignKey {
		return graph.ForeignKey{Columns: []string{col}, RefTable: ref, RefColumns: []string{col}}
	}
	str, f64, b := arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64, arrow.FixedWidthTypes.Boolean
	i64 := arrow.PrimitiveTypes.Int64
	return []tableSpec{
		{
			name: TableCustomers,
			schema: arrow.NewSchema([]arrow.Field{
				pk("customer_id"), col("signup_at", ts), col("country", str), col("segment", str),
				col("acquisition_channel", str), col("marketing_opt_in", b),
			}, nil),
			opts:       connectors.WriteOptions{PrimaryKey: []string{"customer_id"}},
			timeColumn: "signup_at",
		},
		{
			name: TableProducts,
			schema: arrow.NewSchema([]arrow.Field{
				pk("product_id"), col("category", str), col("price", f64), col("name", str),
			}, nil),
			opts: connectors.WriteOptions{PrimaryKey: []string{"product_id"}},
		},
		{
			name: TableOrders,
			schema: arrow.NewSchema([]arrow.Field{
				pk("order_id"), col("customer_id", i64), col("ordered_at", ts), col("status", str),
				col("amount", f64), col("discount_used", b),
			}, nil),
			opts:       connectors.WriteOptions{PrimaryKey: []string{"order_id"}, ForeignKeys: []graph.ForeignKey{fk("customer_id", TableCustomers)}},
			timeColumn: "ordered_at",
		},
		{
			name: TableOrderItems,
			schema: arrow.NewSchema([]arrow.Field{
				pk("order_item_id"), col("order_id", i64), col("product_id", i64),
				col("quantity", arrow.PrimitiveTypes.Int32), col("unit_price", f64),
			}, nil),
			opts: connectors.WriteOptions{PrimaryKey: []string{"order_item_id"}, ForeignKeys: []graph.ForeignKey{
				fk("order_id", TableOrders), fk("product_id", TableProducts),
			}},
		},
		{
			name: TableReturns,
			schema: arrow.NewSchema([]arrow.Field{
				pk("return_id"), col("order_id", i64), col("customer_id", i64), col("returned_at", ts),
				col("reason", str), col("refund_amount", f64),
			}, nil),
			opts: connectors.WriteOptions{PrimaryKey: []string{"return_id"}, ForeignKeys: []graph.ForeignKey{
				fk("order_id", TableOrders), fk("customer_id", TableCustomers),
			}},
			timeColumn: "returned_at",
		},
	}
}

// dataset is a simulated warehouse ready to be emitted.
type dataset struct {
	p           *params
	custs       []simCustomer
	byID        []int32 // customer indices in customer_id order
	orders      []orderRef
	returns     []returnRef
	churners    int
	reactivated int
}

type orderRef struct {
	cust int32
	seq  uint32
}

type returnRef struct {
	cust int32
	ret  uint32 // index into the customer's returns
}

// build simulates the data set with the given number of goroutines; the
// result does not depend on it.
func build(ctx context.Context, cfg Config, parallel int) (*dataset, error) {
	nCust := max(1, int(math.Round(CustomersPerScale*cfg.Scale)))
	nProd := max(50, int(math.Round(ProductsPerScale*cfg.Scale)))
	v := newVocab()
	p := &params{
		v:        v,
		seed:     cfg.Seed,
		start:    cfg.Start.UnixMicro(),
		end:      cfg.Start.UnixMicro() + int64(cfg.Days)*microsPerDay,
		days:     float64(cfg.Days),
		catalog:  newCatalogue(v, cfg.Seed, nProd),
		nCust:    nCust,
		parallel: parallel,
	}
	custs, err := simulate(ctx, p)
	if err != nil {
		return nil, err
	}
	d := &dataset{p: p, custs: custs}

	// customer_id follows signup time.
	d.byID = make([]int32, nCust)
	for i := range d.byID {
		d.byID[i] = int32(i)
	}
	slices.SortFunc(d.byID, func(a, b int32) int {
		if c := cmp.Compare(custs[a].signup, custs[b].signup); c != 0 {
			return c
		}
		return cmp.Compare(int64(a), int64(b))
	})
	nOrders, nReturns := 0, 0
	for rank, ci := range d.byID {
		c := &custs[ci]
		c.id = int64(rank + 1)
		nOrders += len(c.orders)
		nReturns += len(c.returns)
		if c.churned {
			d.churners++
		}
		if c.reactivations > 0 {
			d.reactivated++
		}
	}

	// order_id follows order time.
	d.orders = make([]orderRef, 0, nOrders)
	for i := range custs {
		for s := range custs[i].orders {
			d.orders = append(d.orders, orderRef{cust: int32(i), seq: uint32(s)})
		}
	}
	slices.SortFunc(d.orders, func(a, b orderRef) int {
		if c := cmp.Compare(custs[a.cust].orders[a.seq].at, custs[b.cust].orders[b.seq].at); c != 0 {
			return c
		}
		if c := cmp.Compare(custs[a.cust].id, custs[b.cust].id); c != 0 {
			return c
		}
		return cmp.Compare(int64(a.seq), int64(b.seq))
	})
	for k, r := range d.orders {
		custs[r.cust].orders[r.seq].id = int64(k + 1)
	}

	// return_id follows return time.
	d.returns = make([]returnRef, 0, nReturns)
	for i := range custs {
		for r := range custs[i].returns {
			d.returns = append(d.returns, returnRef{cust: int32(i), ret: uint32(r)})
		}
	}
	slices.SortFunc(d.returns, func(a, b returnRef) int {
		ra, rb := &custs[a.cust].returns[a.ret], &custs[b.cust].returns[b.ret]
		if c := cmp.Compare(ra.at, rb.at); c != 0 {
			return c
		}
		return cmp.Compare(custs[a.cust].orders[ra.seq].id, custs[b.cust].orders[rb.seq].id)
	})
	return d, nil
}

// fill returns the batch builder of the named table.
func (d *dataset) fill(table string) fillFunc {
	custs, v := d.custs, d.p.v
	switch table {
	case TableCustomers:
		pos := 0
		return func(b *array.RecordBuilder, n int) int {
			id := b.Field(0).(*array.Int64Builder)
			at := b.Field(1).(*array.TimestampBuilder)
			country := b.Field(2).(*array.StringBuilder)
			seg := b.Field(3).(*array.StringBuilder)
			ch := b.Field(4).(*array.StringBuilder)
			opt := b.Field(5).(*array.BooleanBuilder)
			k := 0
			for ; k < n && pos < len(d.byID); k, pos = k+1, pos+1 {
				c := &custs[d.byID[pos]]
				id.Append(c.id)
				at.Append(arrow.Timestamp(c.signup))
				country.Append(v.countries[c.country])
				seg.Append(v.segments[c.segment])
				ch.Append(v.channels[c.channel])
				opt.Append(c.optIn)
			}
			return k
		}
	case TableProducts:
		pos := 0
		prods := d.p.catalog.products
		return func(b *array.RecordBuilder, n int) int {
			id := b.Field(0).(*array.Int64Builder)
			cat := b.Field(1).(*array.StringBuilder)
			price := b.Field(2).(*array.Float64Builder)
			name := b.Field(3).(*array.StringBuilder)
			k := 0
			for ; k < n && pos < len(prods); k, pos = k+1, pos+1 {
				pr := &prods[pos]
				id.Append(int64(pos + 1))
				cat.Append(v.categories[pr.category])
				price.Append(pr.price)
				name.Append(pr.name)
			}
			return k
		}
	case TableOrders:
		pos := 0
		return func(b *array.RecordBuilder, n int) int {
			id := b.Field(0).(*array.Int64Builder)
			cust := b.Field(1).(*array.Int64Builder)
			at := b.Field(2).(*array.TimestampBuilder)
			status := b.Field(3).(*array.StringBuilder)
			amount := b.Field(4).(*array.Float64Builder)
			disc := b.Field(5).(*array.BooleanBuilder)
			k := 0
			for ; k < n && pos < len(d.orders); k, pos = k+1, pos+1 {
				r := d.orders[pos]
				c := &custs[r.cust]
				o := &c.orders[r.seq]
				id.Append(o.id)
				cust.Append(c.id)
				at.Append(arrow.Timestamp(o.at))
				status.Append(v.statuses[o.status])
				amount.Append(float64(o.cents) / 100)
				disc.Append(o.discount)
			}
			return k
		}
	case TableOrderItems:
		pos := 0
		var pending []item // items of d.orders[pos-1] not yet emitted
		var pendingOrder int64
		nextID := int64(1)
		var buf []item
		return func(b *array.RecordBuilder, n int) int {
			id := b.Field(0).(*array.Int64Builder)
			oid := b.Field(1).(*array.Int64Builder)
			pid := b.Field(2).(*array.Int64Builder)
			qty := b.Field(3).(*array.Int32Builder)
			price := b.Field(4).(*array.Float64Builder)
			k := 0
			for k < n {
				if len(pending) == 0 {
					if pos >= len(d.orders) {
						break
					}
					r := d.orders[pos]
					pos++
					c := &custs[r.cust]
					o := &c.orders[r.seq]
					buf = genItems(d.p, c, o, buf[:0])
					pending, pendingOrder = buf, o.id
				}
				it := pending[0]
				pending = pending[1:]
				id.Append(nextID)
				nextID++
				oid.Append(pendingOrder)
				pid.Append(int64(it.product) + 1)
				qty.Append(it.quantity)
				price.Append(it.unitPrice)
				k++
			}
			return k
		}
	case TableReturns:
		pos := 0
		return func(b *array.RecordBuilder, n int) int {
			id := b.Field(0).(*array.Int64Builder)
			oid := b.Field(1).(*array.Int64Builder)
			cid := b.Field(2).(*array.Int64Builder)
			at := b.Field(3).(*array.TimestampBuilder)
			reason := b.Field(4).(*array.StringBuilder)
			refund := b.Field(5).(*array.Float64Builder)
			k := 0
			for ; k < n && pos < len(d.returns); k, pos = k+1, pos+1 {
				r := d.returns[pos]
				c := &custs[r.cust]
				ret := &c.returns[r.ret]
				id.Append(int64(pos + 1))
				oid.Append(c.orders[ret.seq].id)
				cid.Append(c.id)
				at.Append(arrow.Timestamp(ret.at))
				reason.Append(v.reasons[ret.reason])
				refund.Append(float64(ret.cents) / 100)
			}
			return k
		}
	}
	return func(*array.RecordBuilder, int) int { return 0 }
}

// Generate simulates the demo warehouse described in the package
// documentation and writes its five tables to sink, parents first, each as
// one lazily built Arrow stream. The same Config always yields the same rows.
func Generate(ctx context.Context, sink connectors.Sink, cfg Config) (Summary, error) {
	if sink == nil {
		return Summary{}, errors.New("demodata: nil sink")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	d, err := build(ctx, cfg, runtime.GOMAXPROCS(0))
	if err != nil {
		return Summary{}, fmt.Errorf("demodata: simulate: %w", err)
	}
	sum := Summary{Customers: len(d.custs), Churners: d.churners, Reactivated: d.reactivated}
	for _, spec := range tableSpecs() {
		r := newLazyReader(ctx, cfg.Allocator, spec.schema, cfg.BatchSize, d.fill(spec.name))
		n, err := sink.Write(ctx, spec.name, r, spec.opts)
		made := r.rows
		r.Release()
		if err != nil {
			return sum, fmt.Errorf("demodata: write %s: %w", spec.name, err)
		}
		if n != made {
			return sum, fmt.Errorf("demodata: write %s: sink wrote %d rows, generated %d", spec.name, n, made)
		}
		sum.Tables = append(sum.Tables, TableSummary{Name: spec.name, Rows: n})
	}
	return sum, nil
}
