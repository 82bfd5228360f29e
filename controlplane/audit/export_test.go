package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

func export(t *testing.T, l *Log, f Filter) (string, int64) {
	t.Helper()
	var b bytes.Buffer
	n, err := l.Export(context.Background(), &b, f)
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), n
}

func verifyExport(t *testing.T, s string, key []byte) Report {
	t.Helper()
	rep, err := VerifyExport(strings.NewReader(s), key)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// editLines applies fn to an export's lines (0 is the header).
func editLines(s string, fn func(lines []string) []string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return strings.Join(fn(lines), "\n") + "\n"
}

// editField changes one JSON field of line i.
func editField(t *testing.T, s string, i int, field string, v any) string {
	return editLines(s, func(lines []string) []string {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		b, _ := json.Marshal(m)
		lines[i] = string(b)
		return lines
	})
}

// TestExport: an export verifies offline; each way of tampering with the
// file is found, naming the entry and its line.
func TestExport(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		l, es := fill(t, db, &Options{Key: testKey, Clock: stepClock(time.Second)}, 6)
		full, n := export(t, l, Filter{})
		if n != 6 || strings.Count(full, "\n") != 7 {
			t.Fatalf("exported %d entries in %d lines, want 6 and a header:\n%s", n, strings.Count(full, "\n"), full)
		}
		t.Logf("export:\n%s", full)
		for _, want := range []string{`"ferry_audit_export":1`, `"alg":"hmac-sha256"`, `"complete":true`, `"head_seq":6`,
			`"seq":3,"at":"2025-03-01T09:00:03Z","tenant":"globex","actor_kind":"user","actor":"user3@acme.test","action":"job.submit"`,
			`"details":{"model":"gbdt","query_id":"q3"}`, `"hash":"`} {
			if !strings.Contains(full, want) {
				t.Errorf("the export lacks %s", want)
			}
		}
		rep := verifyExport(t, full, testKey)
		wantBreak(t, rep, "", 0, "")
		if rep.Entries != 6 || !bytes.Equal(rep.Head, es[5].Hash) {
			t.Errorf("%s: want 6 entries ending in the log's head", rep)
		}

		tests := []struct {
			name   string
			edit   func(string) string
			kind   Kind
			seq    int64
			line   int
			reason string
		}{
			{"edit an actor", func(s string) string { return editField(t, s, 3, "actor", "mallory@evil.test") }, Edited, 3, 4, "actor, target, remote address or details differ"},
			{"edit an outcome", func(s string) string { return editField(t, s, 2, "outcome", "success") }, Edited, 2, 3, "hash does not match"},
			{"edit a time", func(s string) string { return editField(t, s, 5, "at", "2025-03-01T09:00:05.000001Z") }, Edited, 5, 6, "hash does not match"},
			{"edit a hash", func(s string) string {
				return editField(t, s, 4, "hash", strings.Repeat("ab", 32))
			}, Edited, 4, 5, "hash does not match"},
			{"delete a line", func(s string) string {
				return editLines(s, func(l []string) []string { return append(l[:3:3], l[4:]...) })
			}, Deleted, 3, 4, "entry 3 is missing (the next is 4)"},
			{"delete the last line", func(s string) string {
				return editLines(s, func(l []string) []string { return l[:6] })
			}, Truncated, 6, 0, "the head records seq 6 but the last entry is 5"},
			{"swap two lines", func(s string) string {
				return editLines(s, func(l []string) []string { l[3], l[4] = l[4], l[3]; return l })
			}, Reordered, 3, 5, "it comes after entry 4 (line 4)"},
			{"renumber after deleting a line", func(s string) string {
				s = editLines(s, func(l []string) []string { return append(l[:3:3], l[4:]...) })
				for i := 3; i <= 5; i++ {
					s = editField(t, s, i, "seq", i)
				}
				return s
			}, Deleted, 3, 4, "the entry it follows is not in the log"},
			{"cut in the middle of a line", func(s string) string { return s[:len(s)-40] }, Edited, 6, 7, "the line is not an entry"},
			{"redact a line", func(s string) string {
				for _, f := range []string{"actor", "target", "remote", "details", "salt"} {
					s = editField(t, s, 1, f, nil)
				}
				return editField(t, s, 1, "redacted", true)
			}, Edited, 1, 0, "no later audit.redact entry"},
			{"an unknown field", func(s string) string { return editField(t, s, 2, "rows", "1,2,3") }, Edited, 2, 3, `unknown field "rows"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rep := verifyExport(t, tt.edit(full), testKey)
				wantBreak(t, rep, tt.kind, tt.seq, tt.reason)
				if rep.Broken.Line != tt.line {
					t.Errorf("line %d, want %d", rep.Broken.Line, tt.line)
				}
			})
		}

		t.Run("keys", func(t *testing.T) {
			for name, key := range map[string][]byte{"no key": nil, "another key": bytes.Repeat([]byte("x"), 32), "a short key": []byte("x")} {
				if _, err := VerifyExport(strings.NewReader(full), key); !errors.Is(err, ErrKey) {
					t.Errorf("%s: %v, want ErrKey", name, err)
				}
			}
			// Rewritten as an unkeyed export: the key holder sees it.
			forged := editField(t, full, 0, "alg", "sha256")
			if _, err := VerifyExport(strings.NewReader(forged), testKey); !errors.Is(err, ErrKey) {
				t.Errorf("an export rewritten as unkeyed: %v, want ErrKey", err)
			}
		})
		t.Run("not an export", func(t *testing.T) {
			for _, s := range []string{"", "\n\n", `{"seq":1}` + "\n", "id,name\n1,a\n"} {
				if _, err := VerifyExport(strings.NewReader(s), testKey); !errors.Is(err, ErrInvalid) {
					t.Errorf("VerifyExport(%q): %v, want ErrInvalid", s, err)
				}
			}
		})
		t.Run("since", func(t *testing.T) {
			s, n := export(t, l, Filter{Since: es[2].At})
			rep := verifyExport(t, s, testKey)
			wantBreak(t, rep, "", 0, "")
			if n != 4 || rep.First != 3 || rep.AnchorSeq != 2 {
				t.Errorf("%d entries, %s: want 4 from seq 3", n, rep)
			}
			// Cutting the first line off moves the start: the report says where it starts.
			rep = verifyExport(t, editLines(s, func(l []string) []string { return append(l[:1:1], l[2:]...) }), testKey)
			wantBreak(t, rep, Deleted, 3, "entry 3 is missing")
		})
		t.Run("a range", func(t *testing.T) {
			s, n := export(t, l, Filter{AfterSeq: 1, BeforeSeq: 5})
			rep := verifyExport(t, s, testKey)
			wantBreak(t, rep, "", 0, "")
			if n != 3 || rep.First != 2 || rep.Last != 4 {
				t.Errorf("%d entries, %s: want 2 to 4", n, rep)
			}
		})
		t.Run("filtered by tenant", func(t *testing.T) {
			s, n := export(t, l, Filter{Tenant: "acme"})
			rep := verifyExport(t, s, testKey)
			wantBreak(t, rep, "", 0, "")
			if n != 3 || rep.Entries != 3 || !rep.Filtered || !strings.Contains(rep.String(), "entries left out are not detectable") {
				t.Errorf("%d entries, %s: want 3, filtered", n, rep)
			}
			rep = verifyExport(t, editField(t, s, 2, "target", "job/j-0"), testKey)
			wantBreak(t, rep, Edited, 4, "differ from what the chain committed to")
		})
		t.Run("empty", func(t *testing.T) {
			s, n := export(t, l, Filter{Tenant: "nobody"})
			if rep := verifyExport(t, s, testKey); n != 0 || !rep.OK() || rep.Entries != 0 {
				t.Errorf("%d entries, %s", n, rep)
			}
		})
		t.Run("after pruning and redacting", func(t *testing.T) {
			ctx := context.Background()
			l, _ := fill(t, db, &Options{Retention: 3 * time.Second, Clock: stepClock(time.Second)}, 8)
			if p, err := l.Prune(ctx, t0.Add(6*time.Second)); err != nil || p.ThroughSeq != 2 {
				t.Fatalf("prune: %+v %v", p, err)
			}
			if _, err := l.RedactTenant(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			s, n := export(t, l, Filter{})
			rep := verifyExport(t, s, nil)
			wantBreak(t, rep, "", 0, "")
			if n != 8 || rep.AnchorSeq != 2 || rep.Redacted != 3 {
				t.Errorf("%d entries, %s: want 8 after seq 2, 3 redacted", n, rep)
			}
			if strings.Contains(s, "user4@acme.test") || strings.Contains(s, "job/j-6") {
				t.Errorf("the export holds a redacted tenant's actor or target:\n%s", s)
			}
			// Deleting the first entry and moving the header's anchor past
			// it: no prune recorded that anchor.
			var first struct{ Hash string }
			if err := json.Unmarshal([]byte(strings.Split(s, "\n")[1]), &first); err != nil {
				t.Fatal(err)
			}
			cut := editLines(s, func(l []string) []string { return append(l[:1:1], l[2:]...) })
			cut = editField(t, editField(t, cut, 0, "anchor_seq", 3), 0, "anchor_hash", first.Hash)
			wantBreak(t, verifyExport(t, cut, nil), Deleted, 3, "entry 3 was deleted outside Prune: no audit.prune entry records the anchor (seq 3)")
		})
		if _, err := l.Export(context.Background(), &bytes.Buffer{}, Filter{Newest: true}); !errors.Is(err, ErrInvalid) {
			t.Errorf("a newest-first export: %v, want ErrInvalid", err)
		}
	})
}
