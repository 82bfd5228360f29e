package agent

import (
	"regexp"
	"strings"
)

var (
	quotedRe = regexp.MustCompile(`'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|` + "`[^`]*`")
	numberRe = regexp.MustCompile(`[-+]?\d[\d_.,]{3,}(?:[eE][-+]?\d+)?`)
)

// scrubber removes what could be row values from error messages before they
// leave the customer zone: quoted text is replaced by '…' unless it is a
// known table or column name (metadata), and numbers of four or more digits
// by '#'. Unquoted words cannot be told apart from values in general; the
// drivers and the engine quote the values they mention.
type scrubber struct {
	names map[string]bool
}

func newScrubber(names []string) *scrubber {
	s := &scrubber{names: make(map[string]bool, len(names))}
	for _, n := range names {
		s.names[n] = true
	}
	return s
}

func (s *scrubber) scrub(msg string) string {
	msg = quotedRe.ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		if s != nil && s.names[strings.ReplaceAll(inner, `""`, `"`)] {
			return q
		}
		return "'…'"
	})
	msg = numberRe.ReplaceAllString(msg, "#")
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	return msg
}
