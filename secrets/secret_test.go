package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const value = "s3cr3t-p4ssw0rd"

// holder keeps secrets the ways code does: exported, unexported, in a map,
// in a slice, behind a pointer.
type holder struct {
	User     string
	Password Secret
	token    Secret
	Map      map[string]Secret
	List     []Secret
	Ptr      *Secret
}

func TestSecretNeverPrints(t *testing.T) {
	s := New(value)
	h := holder{User: "u", Password: s, token: s, Map: map[string]Secret{"k": s}, List: []Secret{s}, Ptr: &s}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outputs = append(outputs, fmt.Sprint(s, h), fmt.Sprintln(h), s.String(), s.GoString())
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js))
	var buf bytes.Buffer
	for _, hd := range []slog.Handler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})} {
		log := slog.New(hd)
		log.Debug("connect", "password", s, "holder", h, slog.Any("ptr", &s), slog.Group("g", "secret", s))
	}
	outputs = append(outputs, buf.String())
	for i, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("output %d shows the secret: %s", i, out)
		}
	}
	if !strings.Contains(fmt.Sprint(s), Redacted) || !strings.Contains(string(js), Redacted) || !strings.Contains(buf.String(), Redacted) {
		t.Errorf("no %s in %q / %s / %s", Redacted, fmt.Sprint(s), js, buf.String())
	}
	if s.Reveal() != value || New("").Reveal() != "" || (Secret{}).Reveal() != "" || !(Secret{}).IsZero() || s.IsZero() {
		t.Error("Reveal or IsZero is wrong")
	}
}
