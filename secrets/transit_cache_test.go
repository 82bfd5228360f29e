package secrets

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ferry-ai/ferry/internal/vaulttest"
)

// wrappedKey returns the Transit ciphertext of the data key in an envelope.
func wrappedKey(t *testing.T, env []byte) string {
	t.Helper()
	if len(env) < 3 {
		t.Fatalf("envelope of %d bytes", len(env))
	}
	n := int(binary.BigEndian.Uint16(env[1:3]))
	return string(env[3 : 3+n])
}

// TestKeyringCache: a cached keyring seals up to SealUses values under one
// data key and opens them without asking Vault again; an uncached one asks
// Vault for every value, as before. Rotation reaches new seals once the
// cached key is dropped; a deleted key still opens from a cache until its
// TTL ends or Forget, then never again; the cache holds at most MaxKeys
// unwrapped keys; concurrent use is safe.
func TestKeyringCache(t *testing.T) {
	d := vaulttest.Start(t)
	if err := d.Root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	d.Write(t, "transit/keys/tenant-cache", nil)
	r := d.AppRole(t, "ferry-cache", `path "transit/datakey/plaintext/tenant-cache" { capabilities = ["update"] }
path "transit/decrypt/tenant-cache" { capabilities = ["update"] }`)
	ctx := context.Background()
	v, err := OpenVault(ctx, VaultConfig{Address: d.Addr, RetryFor: 2 * time.Second,
		Auth: VaultAuth{Method: "approle", RoleID: r.RoleID, SecretIDFile: r.SecretIDFile}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	base := v.Keyring("transit", "tenant-cache")
	aad := func(i int) []byte { return fmt.Appendf(nil, "jobs/query/[\"j-%d\"]", i) }
	plain := func(i int) []byte { return fmt.Appendf(nil, "PREDICT value %d", i) }

	// Seal reuses a data key SealUses times, then asks for another.
	k := base.WithCache(KeyringCache{TTL: time.Minute, SealUses: 3})
	var sealed [][]byte
	for i := range 5 {
		env, err := k.Seal(ctx, plain(i), aad(i))
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, env)
	}
	if s := k.Stats(); s.DataKeys != 2 || s.CacheHits != 3 {
		t.Errorf("5 seals with SealUses 3: %+v, want 2 data keys and 3 hits", s)
	}
	w := make([]string, len(sealed))
	for i, env := range sealed {
		w[i] = wrappedKey(t, env)
	}
	if w[0] != w[1] || w[1] != w[2] || w[2] == w[3] || w[3] != w[4] {
		t.Errorf("data keys of the 5 values: %v, want the first 3 alike, the last 2 alike and different", w)
	}
	// Reading back what was sealed needs no round trip.
	for i, env := range sealed {
		if pt, err := k.Open(ctx, env, aad(i)); err != nil || string(pt) != string(plain(i)) {
			t.Fatalf("open %d: %q %v", i, pt, err)
		}
	}
	if s := k.Stats(); s.Unwraps != 0 {
		t.Errorf("opening values this keyring sealed asked Vault %d times, want 0", s.Unwraps)
	}
	// The aad still binds with a cached key.
	if _, err := k.Open(ctx, sealed[0], aad(1)); !errors.Is(err, ErrNotAuthentic) {
		t.Errorf("open under another row's aad: %v, want ErrNotAuthentic", err)
	}

	// Another cached keyring unwraps each data key once.
	k2 := base.WithCache(KeyringCache{TTL: time.Minute})
	for range 2 {
		for i, env := range sealed {
			if pt, err := k2.Open(ctx, env, aad(i)); err != nil || string(pt) != string(plain(i)) {
				t.Fatalf("open %d: %q %v", i, pt, err)
			}
		}
	}
	if s := k2.Stats(); s.Unwraps != 2 || s.CacheHits != 8 {
		t.Errorf("opening 5 values under 2 data keys twice: %+v, want 2 unwraps and 8 hits", s)
	}

	// Without a cache, every value has its own data key and every Open
	// asks Vault (the behaviour TestKeyring relies on).
	e1, err := base.Seal(ctx, plain(1), aad(1))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := base.Seal(ctx, plain(1), aad(1))
	if err != nil {
		t.Fatal(err)
	}
	if wrappedKey(t, e1) == wrappedKey(t, e2) {
		t.Error("an uncached keyring reused a data key")
	}
	for range 2 {
		if _, err := base.Open(ctx, e1, aad(1)); err != nil {
			t.Fatal(err)
		}
	}
	if s := base.Stats(); s.DataKeys != 2 || s.Unwraps != 2 || s.CacheHits != 0 {
		t.Errorf("uncached keyring: %+v, want 2 data keys, 2 unwraps, no hits", s)
	}

	// MaxKeys bounds the unwrapped keys kept; the oldest goes first.
	k4 := base.WithCache(KeyringCache{TTL: time.Minute, MaxKeys: 2})
	e3, err := base.Seal(ctx, plain(3), aad(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  []byte
		i    int
		want int64
	}{{e1, 1, 1}, {e2, 1, 2}, {e3, 3, 3}, {e3, 3, 3}, {e2, 1, 3}, {e1, 1, 4}} {
		if _, err := k4.Open(ctx, c.env, aad(c.i)); err != nil {
			t.Fatal(err)
		}
		if got := k4.Stats().Unwraps; got != c.want {
			t.Fatalf("MaxKeys 2: %d unwraps, want %d", got, c.want)
		}
	}

	// Rotation: a cached seal key stays on the old version until it is
	// dropped; then new values are sealed under the new version.
	d.Write(t, "transit/keys/tenant-cache/rotate", nil)
	env, err := k.Seal(ctx, plain(5), aad(5))
	if err != nil {
		t.Fatal(err)
	}
	if got := wrappedKey(t, env); !strings.HasPrefix(got, "vault:v1:") {
		t.Errorf("within the TTL after rotation: data key %.9s…, want the cached v1 key", got)
	}
	k.Forget()
	env, err = k.Seal(ctx, plain(6), aad(6))
	if err != nil {
		t.Fatal(err)
	}
	if got := wrappedKey(t, env); !strings.HasPrefix(got, "vault:v2:") {
		t.Errorf("after Forget: data key %.9s…, want one wrapped by v2", got)
	}
	if pt, err := k.Open(ctx, sealed[0], aad(0)); err != nil || string(pt) != string(plain(0)) {
		t.Fatalf("a v1 value after rotation: %q %v", pt, err)
	}

	// A short TTL: primed now, expired after the deletion below.
	k3 := base.WithCache(KeyringCache{TTL: 300 * time.Millisecond})
	if _, err := k3.Open(ctx, sealed[0], aad(0)); err != nil {
		t.Fatal(err)
	}
	primed := time.Now()
	sealedBefore, err := k.Seal(ctx, plain(7), aad(7))
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent use of one cached keyring.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				n := g*8 + i
				env, err := k.Seal(ctx, plain(n), aad(n))
				if err == nil {
					var pt []byte
					pt, err = k.Open(ctx, env, aad(n))
					if err == nil && string(pt) != string(plain(n)) {
						err = fmt.Errorf("value %d opened as %q", n, pt)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Shred: delete the key.
	d.Write(t, "transit/keys/tenant-cache/config", map[string]any{"deletion_allowed": true})
	if _, err := d.Root.Logical().Delete("transit/keys/tenant-cache"); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Open(ctx, sealed[0], aad(0)); !errors.Is(err, ErrShredded) {
		t.Errorf("uncached open after deletion: %v, want ErrShredded at once", err)
	}
	// Within its TTL a cached key still opens (the documented bound)...
	if _, err := k2.Open(ctx, sealed[0], aad(0)); err != nil {
		t.Errorf("cached open within the TTL after deletion: %v", err)
	}
	// ...and Forget ends that at once.
	k2.Forget()
	if _, err := k2.Open(ctx, sealed[0], aad(0)); !errors.Is(err, ErrShredded) {
		t.Errorf("open after deletion and Forget: %v, want ErrShredded", err)
	}
	// The short TTL ends it without Forget.
	time.Sleep(time.Until(primed.Add(400 * time.Millisecond)))
	if _, err := k3.Open(ctx, sealed[0], aad(0)); !errors.Is(err, ErrShredded) {
		t.Errorf("open after deletion once the TTL passed: %v, want ErrShredded", err)
	}
	// A value sealed before the deletion is shredded as well; after
	// Forget the keyring can no longer seal at all.
	k.Forget()
	if _, err := k.Open(ctx, sealedBefore, aad(7)); !errors.Is(err, ErrShredded) {
		t.Errorf("a value sealed before the deletion: %v, want ErrShredded", err)
	}
	if _, err := k.Seal(ctx, plain(8), aad(8)); err == nil {
		t.Error("sealed under a deleted key after Forget")
	}
}
