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
)

// Keyring encrypts what Ferry keeps at rest for a tenant (sensitive
// metadata fields, any cache) with AES-256-GCM under a fresh data key per
// value, the data key wrapped by the tenant's key in Vault's Transit engine
// (a customer-managed key). Rotating the Transit key keeps old values
// readable; deleting it, or raising its minimum decryption version past
// theirs, makes them unreadable for good (crypto-shredding, how deletion on
// request reaches every copy).
type Keyring struct {
	v     *Vault
	mount string
	key   string
}

// Keyring returns the keyring of Transit key name at mount (e.g.
// "transit", "tenant-acme").
func (v *Vault) Keyring(mount, name string) *Keyring { return &Keyring{v: v, mount: mount, key: name} }

// envelopeVersion is the first byte of a sealed value.
const envelopeVersion = 1

// ErrShredded is returned (wrapped) by Open when the tenant's key no
// longer unwraps the value's data key.
var ErrShredded = errors.New("the data key cannot be unwrapped (key deleted, rotated past, or not this tenant's)")

// Seal encrypts plaintext, bound to aad (e.g. the tenant and field name),
// and returns the envelope: version, the wrapped data key, the nonce and
// the ciphertext. The plaintext data key is zeroed before Seal returns.
func (k *Keyring) Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	path := k.mount + "/datakey/plaintext/" + k.key
	s, err := k.v.c.Logical().WriteWithContext(ctx, path, map[string]any{"bits": 256})
	if err != nil {
		return nil, k.v.wrap(path, err)
	}
	wrapped, _ := s.Data["ciphertext"].(string)
	plainB64, _ := s.Data["plaintext"].(string)
	dk, err := base64.StdEncoding.DecodeString(plainB64)
	if err != nil || wrapped == "" || len(dk) != 32 {
		return nil, fmt.Errorf("vault: %s: no 256-bit data key in the response: %w", path, ErrVault)
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

// Open decrypts an envelope Seal made with the same aad.
func (k *Keyring) Open(ctx context.Context, envelope, aad []byte) ([]byte, error) {
	if len(envelope) < 3 || envelope[0] != envelopeVersion {
		return nil, errors.New("keyring: not a sealed value (bad version)")
	}
	n := int(binary.BigEndian.Uint16(envelope[1:3]))
	if len(envelope) < 3+n+12 {
		return nil, errors.New("keyring: truncated sealed value")
	}
	wrapped := string(envelope[3 : 3+n])
	path := k.mount + "/decrypt/" + k.key
	s, err := k.v.c.Logical().WriteWithContext(ctx, path, map[string]any{"ciphertext": wrapped})
	if err != nil {
		wrapped := k.v.wrap(path, err)
		if errors.Is(wrapped, ErrUnavailable) {
			return nil, wrapped
		}
		return nil, fmt.Errorf("%w: %w", wrapped, ErrShredded)
	}
	plainB64, _ := s.Data["plaintext"].(string)
	dk, err := base64.StdEncoding.DecodeString(plainB64)
	if err != nil || len(dk) != 32 {
		return nil, fmt.Errorf("vault: %s: no 256-bit data key in the response: %w", path, ErrVault)
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
		return nil, errors.New("keyring: the value does not authenticate (tampered, or another field's)")
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
