package audit

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The chain's hash functions, as recorded in the head row and exports.
const (
	algSHA256 = "sha256"
	algHMAC   = "hmac-sha256"
)

const (
	hashSize = sha256.Size
	saltSize = 16
)

// genesis is the "previous hash" of the first entry ever appended.
func genesis() []byte { return make([]byte, hashSize) }

// chain computes entry hashes: SHA-256, or HMAC-SHA256 under a key.
type chain struct {
	alg   string
	key   []byte
	check []byte // a key check value (nil unkeyed): tells a wrong key from tampering
}

func newChain(key []byte) chain {
	if key == nil {
		return chain{alg: algSHA256}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ferry.audit.key-check.v1"))
	return chain{alg: algHMAC, key: bytes.Clone(key), check: m.Sum(nil)[:8]}
}

// fits refuses a key that does not fit a chain made with alg and check.
func (c chain) fits(alg string, check []byte) error {
	switch {
	case alg != algSHA256 && alg != algHMAC:
		return fmt.Errorf("%w: the log's chain algorithm %q is unknown", ErrKey, alg)
	case alg == algHMAC && c.key == nil:
		return fmt.Errorf("%w: the log is keyed (%s): give its key", ErrKey, alg)
	case alg == algSHA256 && c.key != nil:
		return fmt.Errorf("%w: a key was given but the log is not keyed (%s)", ErrKey, alg)
	case c.key != nil && !hmac.Equal(check, c.check):
		return fmt.Errorf("%w: the key is not the log's key", ErrKey)
	}
	return nil
}

// record is an entry as stored: with the commitment to its identifying
// fields and, unless redacted, their salt.
type record struct {
	Entry
	subject []byte
	salt    []byte
	clear   bool // salt, Actor, Target, Remote and Details are present

	badDetails bool // the stored details are not a JSON map of strings
}

// appendField appends v, prefixed by its length: the encoding is
// unambiguous whatever the fields hold.
func appendField[T string | []byte](b []byte, v T) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// commit is the salted commitment to r's identifying fields (actor,
// target, remote, details), which the chain covers in their place.
func commit(r *record) []byte {
	b := []byte("ferry.audit.subject.v1\x00")
	b = appendField(b, r.salt)
	b = appendField(b, r.Actor)
	b = appendField(b, r.Target)
	b = appendField(b, r.Remote)
	keys := make([]string, 0, len(r.Details))
	for k := range r.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendField(b, k)
		b = appendField(b, r.Details[k])
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// hash is r's hash in the chain: H(prev, seq, at, tenant, actor kind,
// action, outcome, subject).
func (c chain) hash(r *record) []byte {
	b := []byte("ferry.audit.entry.v1\x00")
	b = appendField(b, r.Prev)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(r.At.UnixMicro()))
	b = appendField(b, r.Tenant)
	b = appendField(b, string(r.ActorKind))
	b = appendField(b, r.Action)
	b = appendField(b, string(r.Outcome))
	b = appendField(b, r.subject)
	if c.key == nil {
		sum := sha256.Sum256(b)
		return sum[:]
	}
	m := hmac.New(sha256.New, c.key)
	m.Write(b)
	return m.Sum(nil)
}

// Kind is how the chain is broken.
type Kind string

// The kinds of break Verify and VerifyExport find.
const (
	Edited    Kind = "edited"    // a field or hash differs from what was appended
	Deleted   Kind = "deleted"   // an entry is missing
	Reordered Kind = "reordered" // entries are out of their appended order
	Truncated Kind = "truncated" // the last entries are missing
	Inserted  Kind = "inserted"  // an entry was added outside Append
	// kindPrev is an entry whose Prev is not its predecessor's hash: the
	// caller finds where that hash is stored to tell Deleted from Reordered.
	kindPrev Kind = "prev"
)

// Break is the first place the chain is broken.
type Break struct {
	Seq    int64  // the first broken entry
	Kind   Kind   // how
	Reason string // why, precisely
	Line   int    // in an export, its line (from 1); 0 in the database
}

func (b *Break) String() string {
	if b.Line > 0 {
		return fmt.Sprintf("entry %d (line %d) %s: %s", b.Seq, b.Line, b.Kind, b.Reason)
	}
	return fmt.Sprintf("entry %d %s: %s", b.Seq, b.Kind, b.Reason)
}

// Report is the result of verifying a chain.
type Report struct {
	Alg         string // sha256, or hmac-sha256 (keyed)
	Entries     int64  // entries verified
	First, Last int64  // their seq range
	AnchorSeq   int64  // the chain starts after this seq (pruned, or an export's start)
	Head        []byte // the last verified entry's hash
	Redacted    int64  // entries whose identifying fields were redacted
	// Filtered is set for an export of selected entries (tenant, actor,
	// action or outcome): each entry is verified, but one left out is not
	// detectable.
	Filtered bool
	Broken   *Break // nil: the chain is intact
}

// OK reports whether the chain is intact.
func (r Report) OK() bool { return r.Broken == nil }

// String is one line: "chain intact: N entries from seq A to B (alg)…", or
// the first break.
func (r Report) String() string {
	if r.Broken != nil {
		return r.Broken.String()
	}
	var b strings.Builder
	if r.Entries == 0 {
		fmt.Fprintf(&b, "chain intact: 0 entries after seq %d (%s)", r.AnchorSeq, r.Alg)
	} else {
		fmt.Fprintf(&b, "chain intact: %d %s from seq %d to %d (%s)", r.Entries, plural(r.Entries, "entry", "entries"), r.First, r.Last, r.Alg)
	}
	if r.AnchorSeq > 0 {
		fmt.Fprintf(&b, "; starts after seq %d", r.AnchorSeq)
	}
	if r.Redacted > 0 {
		fmt.Fprintf(&b, "; %d redacted", r.Redacted)
	}
	if r.Filtered {
		b.WriteString("; a filtered export: each entry verified, entries left out are not detectable")
	}
	return b.String()
}

// checker walks a chain in seq order. Verify and VerifyExport share it.
type checker struct {
	chain        chain
	anchorSeq    int64
	anchorHash   []byte
	contiguous   bool // every entry after the anchor is there: a gap is a deletion
	requirePrune bool // the anchor must be the one the last audit.prune entry recorded

	lastSeq  int64
	lastHash []byte
	lastAt   int64
	rep      Report
	pending  map[string]int64 // tenant → its first entry without clear values not yet covered by an audit.redact
	prune    *record          // the last audit.prune entry
}

func newChecker(c chain, anchorSeq int64, anchorHash []byte, contiguous, requirePrune bool) *checker {
	return &checker{
		chain: c, anchorSeq: anchorSeq, anchorHash: anchorHash, contiguous: contiguous, requirePrune: requirePrune,
		lastSeq: anchorSeq, lastHash: anchorHash, lastAt: -1 << 63,
		rep:     Report{Alg: c.alg, AnchorSeq: anchorSeq, Head: anchorHash, Filtered: !contiguous},
		pending: map[string]int64{},
	}
}

// add checks the next entry; it returns the break it finds, if any.
func (c *checker) add(r *record) *Break {
	if r.Seq <= c.lastSeq {
		if r.Seq <= c.anchorSeq {
			return &Break{Seq: r.Seq, Kind: Inserted, Reason: fmt.Sprintf("it is at or before the anchor (seq %d) the chain starts after", c.anchorSeq)}
		}
		return &Break{Seq: r.Seq, Kind: Reordered, Reason: fmt.Sprintf("it comes after entry %d", c.lastSeq)}
	}
	linked := r.Seq == c.lastSeq+1
	if !linked && c.contiguous {
		return &Break{Seq: c.lastSeq + 1, Kind: Deleted, Reason: fmt.Sprintf("%s missing (the next is %d)", span(c.lastSeq+1, r.Seq-1, "is", "are"), r.Seq)}
	}
	if linked && !bytes.Equal(r.Prev, c.lastHash) {
		return &Break{Seq: r.Seq, Kind: kindPrev}
	}
	if r.clear {
		if r.badDetails {
			return &Break{Seq: r.Seq, Kind: Edited, Reason: "its details are not a JSON map of strings"}
		}
		if !bytes.Equal(commit(r), r.subject) {
			return &Break{Seq: r.Seq, Kind: Edited, Reason: "its actor, target, remote address or details differ from what the chain committed to"}
		}
	} else if strings.HasPrefix(r.Action, reservedActions) {
		return &Break{Seq: r.Seq, Kind: Edited, Reason: fmt.Sprintf("the details of the log's own %s entry were deleted", r.Action)}
	} else if _, ok := c.pending[r.Tenant]; !ok {
		c.pending[r.Tenant] = r.Seq
	}
	if !bytes.Equal(c.chain.hash(r), r.Hash) {
		reason := "its hash does not match its fields: a field or the hash was changed"
		if c.chain.key != nil {
			reason += ", or the chain was recomputed without the key"
		}
		return &Break{Seq: r.Seq, Kind: Edited, Reason: reason}
	}
	if at := r.At.UnixMicro(); at < c.lastAt {
		return &Break{Seq: r.Seq, Kind: Reordered, Reason: fmt.Sprintf("its time %s is before entry %d's (%s)",
			r.At.Format(time.RFC3339Nano), c.lastSeq, time.UnixMicro(c.lastAt).UTC().Format(time.RFC3339Nano))}
	}
	switch r.Action {
	case actionPrune:
		c.prune = r
	case actionRedact:
		delete(c.pending, r.Tenant)
	}
	if !r.clear {
		c.rep.Redacted++
	}
	c.lastSeq, c.lastHash, c.lastAt = r.Seq, r.Hash, r.At.UnixMicro()
	if c.rep.Entries == 0 {
		c.rep.First = r.Seq
	}
	c.rep.Entries++
	c.rep.Last, c.rep.Head = r.Seq, r.Hash
	return nil
}

// prevBreak says why entry seq does not follow its predecessor, given
// where (if anywhere) the hash it names as previous is stored.
func prevBreak(seq, storedAt int64, found bool) *Break {
	if !found {
		return &Break{Seq: seq, Kind: Deleted, Reason: fmt.Sprintf("the entry it follows is not in the log: an entry before it was deleted (and the rest renumbered), or entry %d was replaced", seq-1)}
	}
	return &Break{Seq: seq, Kind: Reordered, Reason: fmt.Sprintf("the entry it follows is stored at seq %d, not %d: entries were reordered", storedAt, seq-1)}
}

// finish checks what only the end of the walk shows. With a head (the
// database's, or a complete export's) the last entry must be it.
func (c *checker) finish(headSeq int64, headHash []byte, haveHead bool) *Break {
	var found []*Break
	if haveHead {
		for tenant, seq := range c.pending {
			found = append(found, &Break{Seq: seq, Kind: Edited, Reason: fmt.Sprintf("its actor, target, remote address and details were deleted, and no later audit.redact entry for tenant %q covers it", tenant)})
		}
		switch {
		case headSeq > c.lastSeq:
			found = append(found, &Break{Seq: c.lastSeq + 1, Kind: Truncated, Reason: fmt.Sprintf("the head records seq %d but %s: %s deleted", headSeq, c.lastDesc(), span(c.lastSeq+1, headSeq, "was", "were"))})
		case headSeq < c.lastSeq:
			found = append(found, &Break{Seq: headSeq + 1, Kind: Inserted, Reason: fmt.Sprintf("%s added outside Append, after the head (seq %d)", span(headSeq+1, c.lastSeq, "was", "were"), headSeq)})
		case !bytes.Equal(headHash, c.lastHash):
			found = append(found, &Break{Seq: headSeq, Kind: Edited, Reason: "its hash is not the one the head records"})
		}
	}
	if c.requirePrune && c.anchorSeq > 0 {
		through, hash := int64(0), ""
		if c.prune != nil {
			through, _ = strconv.ParseInt(c.prune.Details["through_seq"], 10, 64)
			hash = c.prune.Details["through_hash"]
		}
		if through != c.anchorSeq || hash != hex.EncodeToString(c.anchorHash) {
			from := int64(1)
			if through > 0 && through < c.anchorSeq {
				from = through + 1
			}
			found = append(found, &Break{Seq: from, Kind: Deleted, Reason: fmt.Sprintf("%s deleted outside Prune: no audit.prune entry records the anchor (seq %d)", span(from, c.anchorSeq, "was", "were"), c.anchorSeq)})
		}
	}
	if len(found) == 0 {
		return nil
	}
	return slices.MinFunc(found, func(a, b *Break) int { return cmp.Compare(a.Seq, b.Seq) })
}

// span names entries a to b: "entry 3 is", "entries 3 to 5 are".
func span(a, b int64, one, many string) string {
	if a == b {
		return fmt.Sprintf("entry %d %s", a, one)
	}
	return fmt.Sprintf("entries %d to %d %s", a, b, many)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// lastDesc names the last entry checked.
func (c *checker) lastDesc() string {
	if c.rep.Entries == 0 {
		return "no entry remains"
	}
	return fmt.Sprintf("the last entry is %d", c.lastSeq)
}
