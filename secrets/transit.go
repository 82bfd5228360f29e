package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Keyring encrypts what Ferry keeps at rest for a tenant (sensitive
// metadata fields, any cache) with AES-256-GCM under a data key wrapped by
// the tenant's key in Vault's Transit engine (a customer-managed key).
// Rotating the Transit key keeps old values readable; deleting it, or
// raising its minimum decryption version past theirs, makes them unreadable
// for good (crypto-shredding, how deletion on request reaches every copy).
//
// Without a cache (the default) every Seal asks Vault for a fresh data key
// and every Open asks Vault to unwrap one, so a revocation is seen by the
// next call. WithCache trades that for speed: data keys are kept in memory
// for a bounded time (KeyringCache.TTL), and a revocation takes effect
// within that time, or at once after Forget.
type Keyring struct {
	v     *Vault
	mount string
	key   string
	cache *keyCache // nil: no caching

	dataKeys, unwraps, hits atomic.Int64
}

// Keyring returns the keyring of Transit key name at mount (e.g.
// "transit", "tenant-acme").
func (v *Vault) Keyring(mount, name string) *Keyring { return &Keyring{v: v, mount: mount, key: name} }

// envelopeVersion is the first byte of a sealed value.
const envelopeVersion = 1

// Errors of Keyring.Open.
var (
	// ErrShredded is returned (wrapped) by Open when the tenant's key no
	// longer unwraps the value's data key.
	ErrShredded = errors.New("the data key cannot be unwrapped (key deleted, rotated past, or not this tenant's)")
	// ErrNotAuthentic is returned (wrapped) by Open when a value does not
	// authenticate under its aad: it was tampered with, or it belongs to
	// another field or row.
	ErrNotAuthentic = errors.New("the value does not authenticate (tampered, or another field's)")
)

// Defaults of KeyringCache.
const (
	DefaultKeyCacheTTL      = time.Minute
	DefaultKeyCacheSealUses = 10000
	DefaultKeyCacheMaxKeys  = 4096
)

// KeyringCache bounds how long a Keyring keeps plaintext data keys in
// memory. A data key is used for at most TTL after Vault issued or
// unwrapped it (not renewed by use), so rotating or revoking the Transit
// key takes effect within TTL: values sealed after a rotation use the new
// key version within TTL, and values whose key was revoked stop opening
// within TTL. Keyring.Forget drops every cached key at once.
type KeyringCache struct {
	// TTL is how long a data key is used after Vault issued or unwrapped
	// it (DefaultKeyCacheTTL if zero).
	TTL time.Duration
	// SealUses bounds the values Seal encrypts under one data key before
	// asking Vault for another (DefaultKeyCacheSealUses if zero; far below
	// the 2^32 random nonces AES-GCM allows per key).
	SealUses int
	// MaxKeys bounds the unwrapped data keys kept for Open
	// (DefaultKeyCacheMaxKeys if zero); the oldest goes first.
	MaxKeys int
}

// keyCache is a Keyring's data keys in memory.
type keyCache struct {
	cfg KeyringCache

	mu   sync.Mutex
	seal *cachedKey            // the data key Seal uses now
	open map[string]*cachedKey // unwrapped data keys by wrapped key
}

type cachedKey struct {
	wrapped string
	dk      []byte
	uses    int
	expires time.Time
}

// WithCache returns a keyring of the same Transit key that keeps data keys
// in memory as c says. The caches of two keyrings are separate.
func (k *Keyring) WithCache(c KeyringCache) *Keyring {
	if c.TTL <= 0 {
		c.TTL = DefaultKeyCacheTTL
	}
	if c.SealUses <= 0 {
		c.SealUses = DefaultKeyCacheSealUses
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultKeyCacheMaxKeys
	}
	return &Keyring{v: k.v, mount: k.mount, key: k.key, cache: &keyCache{cfg: c, open: map[string]*cachedKey{}}}
}

// Forget zeroes and drops every cached data key, so that the next Seal and
// Open ask Vault again: after revoking the Transit key (deletion on
// request), nothing sealed under it opens from memory either.
func (k *Keyring) Forget() {
	c := k.cache
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seal != nil {
		clear(c.seal.dk)
		c.seal = nil
	}
	for w, e := range c.open {
		clear(e.dk)
		delete(c.open, w)
	}
}

// KeyringStats counts a keyring's work since it was made.
type KeyringStats struct {
	// DataKeys is how many data keys Seal asked Vault for.
	DataKeys int64
	// Unwraps is how many data keys Open asked Vault to unwrap.
	Unwraps int64
	// CacheHits is how many Seal and Open calls used a cached data key.
	CacheHits int64
}

// Stats returns the keyring's counters.
func (k *Keyring) Stats() KeyringStats {
	return KeyringStats{DataKeys: k.dataKeys.Load(), Unwraps: k.unwraps.Load(), CacheHits: k.hits.Load()}
}

// Seal encrypts plaintext, bound to aad (e.g. the tenant, the field and
// its row), and returns the envelope: version, the wrapped data key, the
// nonce and the ciphertext. The plaintext data key is zeroed before Seal
// returns (or, with a cache, when the cache drops it).
func (k *Keyring) Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	wrapped, dk, err := k.sealKey(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	gcm, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := []byte{envelopeVersion}
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	out = append(out, nonce...)
	return gcm.Seal(out, nonce, plaintext, aad), nil
}

// sealKey returns a data key to seal with (a copy the caller zeroes) and
// its wrapped form: the cached one while it is fresh, else a new one from
// Vault.
func (k *Keyring) sealKey(ctx context.Context) (string, []byte, error) {
	c := k.cache
	if c != nil {
		c.mu.Lock()
		if e := c.seal; e != nil && e.uses < c.cfg.SealUses && time.Now().Before(e.expires) {
			e.uses++
			wrapped, dk := e.wrapped, slices.Clone(e.dk)
			c.mu.Unlock()
			k.hits.Add(1)
			return wrapped, dk, nil
		}
		c.mu.Unlock()
	}
	path := k.mount + "/datakey/plaintext/" + k.key
	s, err := k.v.c.Logical().WriteWithContext(ctx, path, map[string]any{"bits": 256})
	if err != nil {
		return "", nil, k.v.wrap(path, err)
	}
	k.dataKeys.Add(1)
	var wrapped, plainB64 string
	if s != nil {
		wrapped, _ = s.Data["ciphertext"].(string)
		plainB64, _ = s.Data["plaintext"].(string)
	}
	dk, err := base64.StdEncoding.DecodeString(plainB64)
	if err != nil || wrapped == "" || len(dk) != 32 || len(wrapped) > 0xffff {
		clear(dk)
		return "", nil, fmt.Errorf("vault: %s: no 256-bit data key in the response: %w", path, ErrVault)
	}
	if c != nil {
		expires := time.Now().Add(c.cfg.TTL)
		c.mu.Lock()
		if c.seal != nil {
			clear(c.seal.dk)
		}
		c.seal = &cachedKey{wrapped: wrapped, dk: slices.Clone(dk), uses: 1, expires: expires}
		// What is sealed now is often read back soon: Open needs no
		// round trip for it while the key is fresh.
		c.putOpen(wrapped, slices.Clone(dk), expires)
		c.mu.Unlock()
	}
	return wrapped, dk, nil
}

// putOpen caches an unwrapped data key, dropping expired keys and, when
// full, the oldest. c.mu is held.
func (c *keyCache) putOpen(wrapped string, dk []byte, expires time.Time) {
	if old := c.open[wrapped]; old != nil {
		clear(old.dk)
	}
	if len(c.open) >= c.cfg.MaxKeys {
		now := time.Now()
		var oldest *cachedKey
		for w, e := range c.open {
			if !now.Before(e.expires) {
				clear(e.dk)
				delete(c.open, w)
				continue
			}
			if oldest == nil || e.expires.Before(oldest.expires) {
				oldest = e
			}
		}
		if len(c.open) >= c.cfg.MaxKeys && oldest != nil {
			clear(oldest.dk)
			delete(c.open, oldest.wrapped)
		}
	}
	c.open[wrapped] = &cachedKey{wrapped: wrapped, dk: dk, expires: expires}
}

// Open decrypts an envelope Seal made with the same aad. It fails with
// ErrShredded when the tenant's key no longer unwraps the data key, with
// ErrNotAuthentic when the value does not belong to aad (or is not an
// envelope at all), and with
// ErrUnavailable when Vault cannot be reached.
func (k *Keyring) Open(ctx context.Context, envelope, aad []byte) ([]byte, error) {
	if len(envelope) < 3 || envelope[0] != envelopeVersion {
		return nil, fmt.Errorf("keyring: not a sealed value (bad version): %w", ErrNotAuthentic)
	}
	n := int(binary.BigEndian.Uint16(envelope[1:3]))
	if len(envelope) < 3+n+12 {
		return nil, fmt.Errorf("keyring: truncated sealed value: %w", ErrNotAuthentic)
	}
	wrapped := string(envelope[3 : 3+n])
	dk, err := k.openKey(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	gcm, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	rest := envelope[3+n:]
	nonce, ct := rest[:gcm.NonceSize()], rest[gcm.NonceSize():]
	pt, err := gcm.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", ErrNotAuthentic)
	}
	return pt, nil
}

// openKey returns the plaintext of a wrapped data key (a copy the caller
// zeroes): from the cache while fresh, else unwrapped by Vault.
func (k *Keyring) openKey(ctx context.Context, wrapped string) ([]byte, error) {
	c := k.cache
	if c != nil {
		c.mu.Lock()
		if e := c.open[wrapped]; e != nil {
			if time.Now().Before(e.expires) {
				dk := slices.Clone(e.dk)
				c.mu.Unlock()
				k.hits.Add(1)
				return dk, nil
			}
			clear(e.dk)
			delete(c.open, wrapped)
		}
		c.mu.Unlock()
	}
	path := k.mount + "/decrypt/" + k.key
	s, err := k.v.c.Logical().WriteWithContext(ctx, path, map[string]any{"ciphertext": wrapped})
	if err != nil {
		werr := k.v.wrap(path, err)
		// Vault answers 4xx when the key is gone, the key version is below
		// its minimum decryption version, the policy refuses, or the
		// wrapped key is not this key's: the value is shredded for us.
		// Unreachable, sealed or failing (5xx) is not.
		var re *vault.ResponseError
		if errors.Is(werr, ErrUnavailable) || !errors.As(err, &re) || re.StatusCode >= 500 {
			return nil, werr
		}
		return nil, fmt.Errorf("%w: %w", werr, ErrShredded)
	}
	k.unwraps.Add(1)
	var plainB64 string
	if s != nil {
		plainB64, _ = s.Data["plaintext"].(string)
	}
	dk, err := base64.StdEncoding.DecodeString(plainB64)
	if err != nil || len(dk) != 32 {
		clear(dk)
		return nil, fmt.Errorf("vault: %s: no 256-bit data key in the response: %w", path, ErrVault)
	}
	if c != nil {
		c.mu.Lock()
		c.putOpen(wrapped, slices.Clone(dk), time.Now().Add(c.cfg.TTL))
		c.mu.Unlock()
	}
	return dk, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
