package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// BreakGlassUserID is the user ID of the break-glass admin in its tenant.
const BreakGlassUserID = "breakglass"

// phc is a parsed argon2id PHC string.
type phc struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	hash    []byte
}

// Bounds on the argon2id parameters a hash may ask for: a hash from
// elsewhere must not make each attempt cost a gigabyte.
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	minArgonSaltLen = 8
	minArgonHashLen = 16
)

var b64 = base64.RawStdEncoding

// parsePHC reads $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
// (base64 without padding, as the PHC string format says).
func parsePHC(s string) (*phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return nil, errors.New("not a PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")
	}
	if parts[1] != "argon2id" {
		return nil, fmt.Errorf("algorithm %q: want argon2id", parts[1])
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("version %q: want v=19", parts[2])
	}
	h := &phc{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: not a number", kv)
		}
		switch k {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("parameter p=%d: at most 255", n)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("unknown parameter %q", k)
		}
	}
	switch {
	case h.memory == 0 || h.time == 0 || h.threads == 0:
		return nil, errors.New("m, t and p are all required and positive")
	case h.memory > maxArgonMemory || h.time > maxArgonTime:
		return nil, fmt.Errorf("m=%d, t=%d: at most m=%d, t=%d", h.memory, h.time, maxArgonMemory, maxArgonTime)
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < minArgonSaltLen {
		return nil, fmt.Errorf("salt: want at least %d bytes of unpadded base64", minArgonSaltLen)
	}
	if h.hash, err = b64.DecodeString(parts[5]); err != nil || len(h.hash) < minArgonHashLen {
		return nil, fmt.Errorf("hash: want at least %d bytes of unpadded base64", minArgonHashLen)
	}
	return h, nil
}

// verify reports whether password hashes to h, in time independent of
// where they differ.
func (h *phc) verify(password string) bool {
	got := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.hash)))
	return subtle.ConstantTimeCompare(got, h.hash) == 1
}

// HashPassword returns the argon2id PHC string of a password, for
// BreakGlassConfig.PasswordHash, with RFC 9106's second recommended
// parameters (64 MiB, 3 passes, 4 lanes) and a random 16-byte salt.
func HashPassword(password string) (string, error) {
	if len(password) < 12 {
		return "", fmt.Errorf("%w: a break-glass password needs at least 12 characters", ErrInvalid)
	}
	salt := make([]byte, 16)
	randomBytes(salt)
	const m, t, p = 64 * 1024, 3, 4
	key := argon2.IDKey([]byte(password), salt, t, m, p, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// limiter allows max tries per window per key (a remote address).
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	tries  map[string][]time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, tries: map[string][]time.Time{}}
}

// allow records a try by key at now and reports whether it is within the
// limit; when not, it also says when the next try will be.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tries) > 10000 {
		for k, ts := range l.tries {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= l.window {
				delete(l.tries, k)
			}
		}
	}
	ts := l.tries[key]
	for len(ts) > 0 && now.Sub(ts[0]) >= l.window {
		ts = ts[1:]
	}
	if len(ts) >= l.max {
		l.tries[key] = ts
		return false, l.window - now.Sub(ts[0])
	}
	l.tries[key] = append(ts, now)
	return true, 0
}

// breakGlass signs the break-glass admin in: POST username and password
// (form or JSON). Disabled: 404. Each remote address has BreakGlassTries
// a BreakGlassWindow; every try is an event.
func (s *Service) breakGlass(w http.ResponseWriter, r *http.Request) {
	if s.bg == nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	cfg := s.cfg.BreakGlass
	remote := remoteHost(r)
	ev := Event{Tenant: cfg.Tenant, Action: ActionBreakGlass, Remote: remote}
	if ok, wait := s.limiter.allow(remote, s.now()); !ok {
		ev.Outcome, ev.Reason = OutcomeRateLimited, fmt.Sprintf("more than %d tries in %v", BreakGlassTries, BreakGlassWindow)
		s.emit(ev)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeError(w, http.StatusTooManyRequests, "too many tries: wait a minute")
		return
	}
	username, password, err := readCredentials(r)
	if err != nil {
		ev.Outcome, ev.Reason = OutcomeFailure, "malformed request"
		s.emit(ev)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Both checks always run, and neither stops early: the answer's
	// timing says nothing about which one failed.
	s.argon <- struct{}{}
	passOK := s.bg.verify(password)
	<-s.argon
	gotU, wantU := sha256.Sum256([]byte(username)), sha256.Sum256([]byte(cfg.Username))
	userOK := subtle.ConstantTimeCompare(gotU[:], wantU[:]) == 1
	if userOK {
		// Only the configured name is recorded: a mistyped username may be a
		// password.
		ev.Actor = cfg.Username
	}
	if !userOK || !passOK {
		ev.Outcome, ev.Reason = OutcomeFailure, "wrong username or password"
		s.emit(ev)
		writeError(w, http.StatusUnauthorized, "wrong username or password")
		return
	}
	ctx := r.Context()
	now := s.now()
	err = s.db.InTx(ctx, func(tx *metadb.Tx) error {
		u, err := findUser(ctx, tx, cfg.Tenant, "id", BreakGlassUserID)
		if errors.Is(err, ErrNotFound) {
			return insertUser(ctx, tx, User{Tenant: cfg.Tenant, ID: BreakGlassUserID, DisplayName: "break-glass admin (" + cfg.Username + ")",
				Active: true, Role: Admin, CreatedAt: now, UpdatedAt: now})
		}
		if err != nil {
			return err
		}
		u.Active, u.Role, u.UpdatedAt = true, Admin, now
		return updateUser(ctx, tx, u)
	})
	if err == nil {
		err = s.startSession(ctx, w, cfg.Tenant, BreakGlassUserID, ViaBreakGlass, cfg.SessionTTL)
	}
	if err != nil {
		ev.Outcome, ev.Reason = OutcomeFailure, err.Error()
		s.emit(ev)
		writeError(w, http.StatusInternalServerError, "sign-in failed: see the control plane's log")
		return
	}
	ev.Outcome, ev.Reason = OutcomeSuccess, "break-glass admin signed in for "+cfg.SessionTTL.String()
	s.emit(ev)
	writeJSON(w, http.StatusOK, Principal{Tenant: cfg.Tenant, UserID: BreakGlassUserID, Role: Admin, Via: ViaBreakGlass})
}

// readCredentials reads username and password from a JSON or form body.
func readCredentials(r *http.Request) (username, password string, err error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 4096)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var in struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return "", "", errors.New("want a JSON object {username, password}")
		}
		username, password = in.Username, in.Password
	} else {
		if err := r.ParseForm(); err != nil {
			return "", "", errors.New("want a form with username and password")
		}
		username, password = r.PostForm.Get("username"), r.PostForm.Get("password")
	}
	if username == "" || password == "" {
		return "", "", errors.New("username and password are required")
	}
	return username, password, nil
}
