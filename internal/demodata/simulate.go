package demodata

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
)

// vocab holds the dimension values and the simulation's weights. It is built
// once per Generate call and only read afterwards. Indices into its slices
// are stored in the simulation and map to strings when tables are emitted,
// so the order of values is part of the output.
type vocab struct {
	countries, segments, channels, statuses, reasons, categories, adjectives []string
	countryW, segmentW, channelW, reasonW, categoryW                         []float64
	// Per-segment churn-hazard and mean-gap factors, per-channel churn
	// factor, per-category median price.
	segmentChurn, segmentGap, channelChurn, categoryMedian []float64
	// products lists product nouns by category.
	products [][]string
}

func newVocab() *vocab {
	return &vocab{
		countries:      []string{"US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "SE"},
		countryW:       []float64{0.38, 0.12, 0.10, 0.08, 0.08, 0.06, 0.05, 0.05, 0.04, 0.04},
		segments:       []string{"standard", "premium", "business"},
		segmentW:       []float64{0.65, 0.25, 0.10},
		segmentChurn:   []float64{1.0, 0.55, 0.8},
		segmentGap:     []float64{1.0, 0.85, 0.7},
		channels:       []string{"organic_search", "paid_search", "paid_social", "referral", "email", "affiliate"},
		channelW:       []float64{0.30, 0.20, 0.20, 0.12, 0.10, 0.08},
		channelChurn:   []float64{0.9, 1.1, 1.9, 0.45, 0.8, 1.4},
		statuses:       []string{"delivered", "cancelled", "shipped"},
		reasons:        []string{"damaged", "wrong_size", "not_as_described", "changed_mind", "late_delivery", "defective"},
		reasonW:        []float64{0.18, 0.22, 0.2, 0.2, 0.08, 0.12},
		categories:     []string{"electronics", "home", "apparel", "beauty", "sports", "toys", "grocery", "books"},
		categoryW:      []float64{0.12, 0.16, 0.2, 0.12, 0.1, 0.08, 0.12, 0.1},
		categoryMedian: []float64{120, 45, 35, 20, 50, 25, 8, 15},
		adjectives:     []string{"Classic", "Urban", "Nordic", "Eco", "Pro", "Compact", "Deluxe", "Everyday", "Vintage", "Smart", "Premium", "Essential"},
		products: [][]string{
			{"Headphones", "Charger", "Speaker", "Keyboard", "Mouse", "Webcam", "Smartwatch", "Power Bank"},
			{"Lamp", "Cushion", "Vase", "Blanket", "Mug Set", "Frame", "Candle", "Rug"},
			{"T-Shirt", "Jeans", "Jacket", "Sneakers", "Scarf", "Hoodie", "Dress", "Cap"},
			{"Serum", "Moisturizer", "Shampoo", "Lip Balm", "Perfume", "Face Mask", "Soap", "Sunscreen"},
			{"Yoga Mat", "Dumbbells", "Water Bottle", "Running Shorts", "Tennis Balls", "Jump Rope", "Backpack", "Helmet"},
			{"Puzzle", "Board Game", "Plush Bear", "Building Set", "Toy Car", "Kite", "Doll", "Card Game"},
			{"Coffee Beans", "Olive Oil", "Granola", "Tea Box", "Chocolate", "Pasta", "Honey", "Spices"},
			{"Novel", "Cookbook", "Atlas", "Biography", "Poetry", "Comic", "Guide", "Notebook"},
		},
	}
}

// Status codes stored in simOrder.status; they index vocab.statuses.
const (
	statusDelivered uint8 = iota
	statusCancelled
	statusShipped
)

const (
	microsPerDay = 86_400_000_000
	// baseHazard is the churn-onset hazard per day of an average customer.
	baseHazard = 0.0011
	// medianGap is the median of the customers' base mean gap between orders.
	medianGap = 16.0
	// gapShape is the gamma shape of the gaps between orders.
	gapShape = 5
	// winBackBase and winBackDiscount give the chance that a customer who
	// stopped comes back: base + discount × discount propensity, times
	// winBackNoOptIn for customers who did not opt in to marketing.
	winBackBase     = 0.1
	winBackDiscount = 0.5
	winBackNoOptIn  = 0.6
	// dormancyMin and dormancyMean shape the days between the last order
	// before a stop and the first order after a win-back: dormancyMin plus
	// an exponential with mean dormancyMean.
	dormancyMin  = 75
	dormancyMean = 120
	// saltItems separates the item streams from the customer streams.
	saltItems = 0x6974656d73
	// saltProducts seeds the catalogue.
	saltProducts = 0x70726f6475637473
)

// product is one catalogue entry.
type product struct {
	name     string
	category uint8
	price    float64
}

// catalogue is the product table plus an index by category.
type catalogue struct {
	products []product
	byCat    [][]int32
}

func newCatalogue(v *vocab, seed uint64, n int) *catalogue {
	rng := rand.New(rand.NewPCG(seed, saltProducts))
	c := &catalogue{products: make([]product, n), byCat: make([][]int32, len(v.categories))}
	for i := range c.products {
		cat := i % len(v.categories)
		if i >= len(v.categories) { // every category has at least one product
			cat = pick(rng, v.categoryW)
		}
		price := v.categoryMedian[cat] * math.Exp(0.6*rng.NormFloat64())
		price = math.Max(1, math.Round(price*100)/100-0.01)
		nouns := v.products[cat]
		c.products[i] = product{
			name:     v.adjectives[rng.IntN(len(v.adjectives))] + " " + nouns[rng.IntN(len(nouns))],
			category: uint8(cat),
			price:    price,
		}
		c.byCat[cat] = append(c.byCat[cat], int32(i))
	}
	return c
}

// simOrder is one order in a customer's timeline, kept compact: its items are
// regenerated from (seed, customer, seq, progress, discount) when emitted.
type simOrder struct {
	at       int64  // microseconds since the Unix epoch
	cents    int64  // amount in cents
	id       int64  // order_id, assigned after the global sort
	progress uint8  // decline progress 0..255 when the order was placed
	status   uint8  // index into vocab.statuses
	discount bool   // discount_used
	nItems   uint8  // number of order_items rows
	seq      uint32 // position in the customer's timeline
}

// simReturn is one return of a customer's order.
type simReturn struct {
	at     int64 // returned_at, microseconds since the Unix epoch
	cents  int64 // refund in cents
	seq    uint32
	reason uint8
}

// simCustomer is one customer: attributes, hidden traits and timeline.
type simCustomer struct {
	idx       int
	id        int64
	signup    int64
	country   uint8
	segment   uint8
	channel   uint8
	optIn     bool
	favs      [2]uint8
	discountP float64
	orders    []simOrder
	returns   []simReturn
	churned   bool // stopped, and not back, before the end of the window
	// reactivations counts the customer's returns after a dormancy.
	reactivations int
}

// item is one order line.
type item struct {
	product   int32
	quantity  int32
	unitPrice float64
}

// params are the resolved configuration the simulation needs.
type params struct {
	v        *vocab
	seed     uint64
	start    int64 // micros
	end      int64 // micros
	days     float64
	catalog  *catalogue
	nCust    int
	parallel int
}

func pick(rng *rand.Rand, weights []float64) int {
	u := rng.Float64()
	for i, w := range weights {
		if u < w {
			return i
		}
		u -= w
	}
	return len(weights) - 1
}

func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// itemRNG is the generator of one order's items. It depends only on the seed,
// the customer's index and the order's position in the timeline.
func itemRNG(seed uint64, custIdx int, seq uint32) *rand.Rand {
	return rand.New(rand.NewPCG(seed^saltItems, mix64(uint64(custIdx)<<32|uint64(seq))))
}

// genItems appends one order's items to buf. It is a pure function of its
// arguments, so the timeline and the order_items emitter agree.
func genItems(p *params, c *simCustomer, o *simOrder, buf []item) []item {
	rng := itemRNG(p.seed, c.idx, o.seq)
	prog := float64(o.progress) / 255
	n := 1
	pi := 0.45 - 0.2*prog
	for range 5 {
		if rng.Float64() < pi {
			n++
		}
	}
	for range n {
		var cat int
		if rng.Float64() < 0.6 {
			cat = int(c.favs[rng.IntN(2)])
		} else {
			cat = pick(rng, p.v.categoryW)
		}
		list := p.catalog.byCat[cat]
		prod := list[rng.IntN(len(list))]
		if rng.Float64() < 0.7*prog { // a declining customer buys cheaper things
			alt := list[rng.IntN(len(list))]
			if p.catalog.products[alt].price < p.catalog.products[prod].price {
				prod = alt
			}
		}
		q := int32(1)
		if u := rng.Float64(); u < 0.07*(1-prog) {
			q = 3
		} else if u < 0.25*(1-prog) {
			q = 2
		}
		price := p.catalog.products[prod].price
		if o.discount {
			price = math.Round(price*85) / 100
		}
		buf = append(buf, item{product: prod, quantity: q, unitPrice: price})
	}
	return buf
}

// gammaUnit draws a gamma(gapShape) variate with mean 1.
func gammaUnit(rng *rand.Rand) float64 {
	var s float64
	for range gapShape {
		s += rng.ExpFloat64()
	}
	return s / gapShape
}

func cents(x float64) int64 { return int64(math.Round(x * 100)) }

// simulate builds every customer's timeline. Customers are independent, so
// they are simulated in parallel; each has its own generator, so the result
// does not depend on scheduling.
func simulate(ctx context.Context, p *params) ([]simCustomer, error) {
	custs := make([]simCustomer, p.nCust)
	var wg sync.WaitGroup
	workers := max(1, min(p.parallel, p.nCust))
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []item
			for i := w; i < p.nCust; i += workers {
				if i%512 == w {
					if err := ctx.Err(); err != nil {
						errs[w] = err
						return
					}
				}
				buf = simulateCustomer(p, i, &custs[i], buf)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return custs, nil
}

// simulateCustomer draws customer i's attributes and order timeline.
func simulateCustomer(p *params, i int, c *simCustomer, buf []item) []item {
	rng := rand.New(rand.NewPCG(p.seed, mix64(uint64(i))))
	c.idx = i
	dayMicros := float64(microsPerDay)
	signupDay := rng.Float64() * (p.days - 14)
	c.signup = p.start + int64(signupDay*dayMicros)/1_000_000*1_000_000
	c.country = uint8(pick(rng, p.v.countryW))
	c.segment = uint8(pick(rng, p.v.segmentW))
	c.channel = uint8(pick(rng, p.v.channelW))
	c.optIn = rng.Float64() < 0.55
	c.favs = [2]uint8{uint8(pick(rng, p.v.categoryW)), uint8(pick(rng, p.v.categoryW))}
	if c.optIn {
		c.discountP = 0.15 + 0.5*rng.Float64()
	} else {
		c.discountP = 0.03 + 0.25*rng.Float64()
	}
	// Hidden traits: the base mean gap between orders (lognormal, wide
	// spread), the base return propensity and the churn hazard.
	gap := medianGap * p.v.segmentGap[c.segment] * math.Exp(1.4*rng.NormFloat64())
	gap = math.Min(120, math.Max(3, gap))
	returnP := 0.04 + 0.1*rng.Float64()
	hazard := baseHazard * p.v.segmentChurn[c.segment] * p.v.channelChurn[c.channel] * (1.6 - 1.4*c.discountP)

	// Win-back: after a stop, a customer may come back once a dormancy is
	// over, more often if reachable by marketing and fond of discounts.
	winBack := winBackBase + winBackDiscount*c.discountP
	if !c.optIn {
		winBack *= winBackNoOptIn
	}

	t := signupDay + rng.ExpFloat64()*gap*0.5
	declining := false
	var declineStart, declineEnd, widen float64
	var recent [6]bool // returned flags of the last orders (ring buffer)
	var lastAt float64 // day of the latest order
	seq := uint32(0)
	// stop ends the customer's activity after its order at lastAt: it returns
	// false when the customer never orders again inside the window, or true
	// with t set to the first order after a dormancy.
	stop := func() bool {
		if rng.Float64() >= winBack {
			return false
		}
		back := lastAt + dormancyMin + rng.ExpFloat64()*dormancyMean
		if back > p.days {
			return false
		}
		c.reactivations++
		declining = false
		recent = [6]bool{} // a fresh start: old returns no longer count
		t = back
		return true
	}
	for {
		prog := 0.0
		if declining {
			if t >= declineEnd && declineEnd <= p.days {
				if !stop() {
					c.churned = true
					break
				}
				continue
			}
			prog = math.Min(1, (t-declineStart)/(declineEnd-declineStart))
		}
		if t > p.days {
			break
		}
		o := simOrder{
			at:       p.start + int64(t*dayMicros)/1_000_000*1_000_000,
			progress: uint8(math.Round(prog * 255)),
			discount: rng.Float64() < c.discountP*(1-prog),
			seq:      seq,
		}
		buf = genItems(p, c, &o, buf[:0])
		var sum float64
		for _, it := range buf {
			sum += float64(it.quantity) * it.unitPrice
		}
		o.cents = cents(sum)
		o.nItems = uint8(len(buf))
		progQ := float64(o.progress) / 255
		switch {
		case rng.Float64() < 0.03+0.08*progQ:
			o.status = statusCancelled
		case p.days-t < 4:
			o.status = statusShipped
		default:
			o.status = statusDelivered
		}
		returned := false
		if o.status == statusDelivered && rng.Float64() < returnP+0.2*progQ {
			rt := t + 2 + rng.ExpFloat64()*5
			if rt <= p.days {
				returned = true
				it := buf[rng.IntN(len(buf))]
				refund := float64(it.quantity) * it.unitPrice
				if rng.Float64() < 0.25 {
					refund = sum
				}
				c.returns = append(c.returns, simReturn{
					at:     p.start + int64(rt*dayMicros)/1_000_000*1_000_000,
					cents:  cents(refund),
					seq:    seq,
					reason: uint8(pick(rng, p.v.reasonW)),
				})
			}
		}
		recent[seq%uint32(len(recent))] = returned
		c.orders = append(c.orders, o)
		lastAt = t
		seq++

		// One-time buyers: some customers do not come back after the first
		// order, more often those acquired through churn-prone channels.
		if seq == 1 && rng.Float64() < 0.05*p.v.channelChurn[c.channel] {
			if !stop() {
				c.churned = true
				break
			}
			continue
		}
		// Next gap: gamma(gapShape) around the mean gap, widened during decline.
		m := 1.0
		if declining {
			m = 1 + (widen-1)*math.Max(0.5, prog)
		}
		next := gap * m * gammaUnit(rng)
		if !declining {
			nRet := 0
			for _, r := range recent {
				if r {
					nRet++
				}
			}
			h := hazard * (1 + 8*float64(nRet)/float64(len(recent)))
			if rng.Float64() < 1-math.Exp(-h*next) {
				declining = true
				declineStart = t
				declineEnd = t + 60 + 60*rng.Float64()
				widen = 2 + rng.Float64()
				next = gap * (1 + (widen-1)*0.5) * gammaUnit(rng)
			}
		}
		t += next
	}
	return buf
}
