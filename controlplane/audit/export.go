package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Filter selects entries for List and Export. Zero fields select all.
type Filter struct {
	Tenant    string
	ActorKind ActorKind
	Actor     string
	Action    string // a prefix: "job." selects job.submit, job.cancel, …
	Outcome   Outcome
	Since     time.Time // at or after
	Until     time.Time // before
	AfterSeq  int64     // seq greater than
	BeforeSeq int64     // seq less than (0: no bound)
	// Newest lists the newest entries first (List only; page on with
	// BeforeSeq).
	Newest bool
	// Limit caps the entries: List's default is 100 and its maximum 1000;
	// Export's default is all.
	Limit int
}

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// selective reports whether f picks entries by content: the result is not
// a contiguous stretch of the chain.
func (f Filter) selective() bool {
	return f.Tenant != "" || f.ActorKind != "" || f.Actor != "" || f.Action != "" || f.Outcome != ""
}

func (f Filter) where() (string, []any, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w filter: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	var conds []string
	var args []any
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if f.Tenant != "" {
		add(`l.tenant = ?`, f.Tenant)
	}
	switch f.ActorKind {
	case "":
	case User, Admin, Support, Agent, System:
		add(`l.actor_kind = ?`, string(f.ActorKind))
	default:
		return "", nil, bad("actor kind %q: want user, admin, support, agent or system", f.ActorKind)
	}
	if f.Actor != "" {
		add(`s.actor = ?`, f.Actor)
	}
	if f.Action != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
		add(`l.action LIKE ? ESCAPE '\'`, esc.Replace(f.Action)+"%")
	}
	switch f.Outcome {
	case "":
	case Success, Denied, Failed:
		add(`l.outcome = ?`, string(f.Outcome))
	default:
		return "", nil, bad("outcome %q: want success, denied or failed", f.Outcome)
	}
	if !f.Since.IsZero() {
		add(`l.at_us >= ?`, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		add(`l.at_us < ?`, f.Until.UnixMicro())
	}
	if f.AfterSeq < 0 || f.BeforeSeq < 0 || f.Limit < 0 {
		return "", nil, bad("negative seq or limit")
	}
	if f.AfterSeq > 0 {
		add(`l.seq > ?`, f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		add(`l.seq < ?`, f.BeforeSeq)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// List returns the entries f selects, oldest first (or newest first with
// f.Newest), at most f.Limit of them. A redacted entry has Redacted set and
// no actor, target, remote or details.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	where, args, err := f.where()
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	order := ` ORDER BY l.seq`
	if f.Newest {
		order += ` DESC`
	}
	rows, err := l.db.Query(ctx, fmt.Sprintf("%s%s%s LIMIT %d", selectEntries, where, order, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		out = append(out, r.Entry)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}

// exportFormat is the version of the export's format, in its first line.
const exportFormat = 1

// exportHeader is an export's first line: where its chain starts, and
// what VerifyExport can check.
type exportHeader struct {
	Format     int       `json:"ferry_audit_export"`
	Alg        string    `json:"alg"`
	KeyCheck   hexBytes  `json:"key_check,omitempty"`
	AnchorSeq  int64     `json:"anchor_seq"`  // the first entry's predecessor
	AnchorHash hexBytes  `json:"anchor_hash"` // its hash
	FromStart  bool      `json:"from_start"`  // the anchor is the log's: pruned, or the genesis
	Filtered   bool      `json:"filtered"`    // entries selected by content: not contiguous
	Complete   bool      `json:"complete"`    // contiguous up to the head
	HeadSeq    int64     `json:"head_seq,omitempty"`
	HeadHash   hexBytes  `json:"head_hash,omitempty"`
	ExportedAt time.Time `json:"exported_at"`
}

// exportLine is one entry of an export.
type exportLine struct {
	Seq       int64             `json:"seq"`
	At        time.Time         `json:"at"`
	Tenant    string            `json:"tenant"`
	ActorKind ActorKind         `json:"actor_kind"`
	Actor     string            `json:"actor,omitempty"`
	Action    string            `json:"action"`
	Target    string            `json:"target,omitempty"`
	Outcome   Outcome           `json:"outcome"`
	Remote    string            `json:"remote,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	Redacted  bool              `json:"redacted,omitempty"`
	Salt      hexBytes          `json:"salt,omitempty"`
	Subject   hexBytes          `json:"subject"`
	Prev      hexBytes          `json:"prev"`
	Hash      hexBytes          `json:"hash"`
}

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

// Export writes the entries f selects as JSON lines, oldest first: a
// header line with the anchor the chain starts from (so the file can be
// verified offline by VerifyExport), then one entry per line with its seq,
// its fields, and hex salt, subject, prev and hash. It returns the number
// of entries written. A filter by tenant, actor, action or outcome makes
// an export whose entries are verified one by one, but whose omissions are
// not detectable.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter) (int64, error) {
	if f.Newest {
		return 0, fmt.Errorf("%w filter: an export is oldest first", ErrInvalid)
	}
	where, args, err := f.where()
	if err != nil {
		return 0, err
	}
	q := selectEntries + where + ` ORDER BY l.seq`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var n int64
	err = l.snapshot(ctx, func(tq txQuerier) error {
		h, err := readHead(ctx, tq, "")
		if err != nil {
			return err
		}
		hdr := exportHeader{
			Format: exportFormat, Alg: h.alg, KeyCheck: h.keyCheck,
			FromStart: f.Since.IsZero() && f.AfterSeq == 0,
			Filtered:  f.selective(),
		}
		if hdr.Alg == "" {
			hdr.Alg = l.chain.alg
		}
		hdr.Complete = !hdr.Filtered && f.Until.IsZero() && f.BeforeSeq == 0 && f.Limit == 0
		if hdr.Complete {
			hdr.HeadSeq, hdr.HeadHash = h.seq, h.hash
		}
		hdr.ExportedAt = l.clock().UTC().Truncate(time.Second)
		rows, err := tq.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return err
			}
			if n == 0 {
				// The header goes first, with the anchor: the log's, or the
				// first exported entry's predecessor.
				hdr.AnchorSeq, hdr.AnchorHash = h.anchorSeq, h.anchorHash
				if !hdr.FromStart {
					hdr.AnchorSeq, hdr.AnchorHash = r.Seq-1, r.Prev
				}
				if err := enc.Encode(hdr); err != nil {
					return err
				}
			}
			line := exportLine{
				Seq: r.Seq, At: r.At, Tenant: r.Tenant, ActorKind: r.ActorKind, Actor: r.Actor, Action: r.Action,
				Target: r.Target, Outcome: r.Outcome, Remote: r.Remote, Details: r.Details, Redacted: r.Redacted,
				Salt: r.salt, Subject: r.subject, Prev: r.Prev, Hash: r.Hash,
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n == 0 {
			hdr.AnchorSeq, hdr.AnchorHash = h.anchorSeq, h.anchorHash
			if !hdr.FromStart {
				hdr.AnchorSeq, hdr.AnchorHash = h.seq, h.hash
			}
			return enc.Encode(hdr)
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return n, fmt.Errorf("audit: export: %w", err)
	}
	return n, nil
}

// maxLine is the longest line VerifyExport reads: an entry is at most a
// few KiB.
const maxLine = 1 << 20

// VerifyExport verifies a file written by Export, offline, from the anchor
// in its header: the same checks as Verify (for a filtered export, each
// entry on its own). key is the log's HMAC key (nil for an unkeyed log). A
// file that is not an export, or a key that does not fit it, is an error;
// a broken chain is a Report with Broken set.
func VerifyExport(r io.Reader, key []byte) (Report, error) {
	if key != nil && len(key) < 32 {
		return Report{}, fmt.Errorf("%w: an HMAC key of %d bytes: want at least 32", ErrKey, len(key))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	lineNo := 0
	next := func() ([]byte, int, bool) {
		for sc.Scan() {
			lineNo++
			if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
				return b, lineNo, true
			}
		}
		return nil, lineNo, false
	}
	first, _, ok := next()
	if !ok {
		if err := sc.Err(); err != nil {
			return Report{}, fmt.Errorf("audit: verify export: %w", err)
		}
		return Report{}, fmt.Errorf("%w export: the file is empty", ErrInvalid)
	}
	var hdr exportHeader
	if err := strictUnmarshal(first, &hdr); err != nil || hdr.Format != exportFormat {
		return Report{}, fmt.Errorf("%w export: line 1 is not a ferry audit export header (format %d)", ErrInvalid, exportFormat)
	}
	ch := newChain(key)
	if err := ch.fits(hdr.Alg, hdr.KeyCheck); err != nil {
		return Report{}, err
	}
	c := newChecker(ch, hdr.AnchorSeq, hdr.AnchorHash, !hdr.Filtered, hdr.FromStart && !hdr.Filtered)
	var brk *Break
	for brk == nil {
		b, _, ok := next()
		if !ok {
			break
		}
		var ln exportLine
		if err := strictUnmarshal(b, &ln); err != nil {
			brk = &Break{Seq: c.lastSeq + 1, Kind: Edited, Reason: "the line is not an entry: " + err.Error(), Line: lineNo}
			break
		}
		rec := record{
			Entry: Entry{Seq: ln.Seq, At: ln.At, Tenant: ln.Tenant, ActorKind: ln.ActorKind, Actor: ln.Actor, Action: ln.Action,
				Target: ln.Target, Outcome: ln.Outcome, Remote: ln.Remote, Details: ln.Details, Redacted: ln.Redacted, Prev: ln.Prev, Hash: ln.Hash},
			subject: ln.Subject, salt: ln.Salt, clear: !ln.Redacted,
		}
		if ln.Redacted && (ln.Actor != "" || ln.Target != "" || ln.Remote != "" || ln.Details != nil || ln.Salt != nil) {
			brk = &Break{Seq: ln.Seq, Kind: Edited, Reason: "it is marked redacted but carries an actor, target, remote address, details or salt", Line: lineNo}
			break
		}
		brk = c.add(&rec)
		if brk == nil {
			continue
		}
		brk.Line = lineNo
		switch {
		case brk.Kind == kindPrev:
			// Where is the entry it names as previous? Look further on.
			at, _, found := lookahead(next, func(seq int64, hash []byte) bool { return bytes.Equal(hash, ln.Prev) })
			line := brk.Line
			brk = prevBreak(brk.Seq, at, found)
			brk.Line = line
		case brk.Kind == Deleted && brk.Seq < ln.Seq:
			// A missing entry may be further on: lines were reordered.
			missing := brk.Seq
			if _, line, found := lookahead(next, func(seq int64, _ []byte) bool { return seq == missing }); found {
				brk = &Break{Seq: missing, Kind: Reordered, Line: line, Reason: fmt.Sprintf("it comes after entry %d (line %d)", ln.Seq, brk.Line)}
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Report{}, fmt.Errorf("%w export: line %d is longer than %d bytes", ErrInvalid, lineNo+1, maxLine)
		}
		return Report{}, fmt.Errorf("audit: verify export: %w", err)
	}
	if brk == nil {
		brk = c.finish(hdr.HeadSeq, hdr.HeadHash, hdr.Complete)
	}
	rep := c.rep
	rep.Broken = brk
	return rep, nil
}

// lookahead reads the rest of an export for the first entry that match
// accepts, and returns its seq and line.
func lookahead(next func() ([]byte, int, bool), match func(seq int64, hash []byte) bool) (int64, int, bool) {
	for {
		b, line, ok := next()
		if !ok {
			return 0, 0, false
		}
		var e struct {
			Seq  int64    `json:"seq"`
			Hash hexBytes `json:"hash"`
		}
		if json.Unmarshal(b, &e) == nil && match(e.Seq, e.Hash) {
			return e.Seq, line, true
		}
	}
}

// strictUnmarshal decodes one JSON value, refusing unknown fields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
