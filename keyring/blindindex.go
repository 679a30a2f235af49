package keyring

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"strings"
	"sync"
)

// IndexSize is the size in bytes of a blind index and of a secret hash.
const IndexSize = sha256.Size

// secretKeyInfo labels the HKDF derivation of the secret-hash key from the
// blind-index key. Changing it invalidates every stored code and token hash.
const secretKeyInfo = "steward/secret-hash/v1"

// maxPooledBuf bounds the scratch buffer a pooled MAC keeps, so one long value
// does not pin memory in the pool.
const maxPooledBuf = 4 << 10

// BlindIndex returns the 32-byte HMAC-SHA256, under the key file's blind-index
// key, of kind || 0x00 || value. The same kind and value always give the same
// index under one key file, so stored indexes find a phone number, WeChat id or
// contact without the value being stored; different kinds give unrelated indexes
// for the same value. Callers normalize value first (E.164 for phone numbers).
// kind is a constant chosen by the code ("phone", "wechat", "contact"); BlindIndex
// panics if it is empty or contains a NUL byte, since such a kind could collide
// with another.
func (r *Keyring) BlindIndex(kind string, value string) []byte {
	return r.blind.sum(kind, value)
}

// HashSecret returns the 32-byte HMAC-SHA256 of kind || 0x00 || secret, for
// storing one-time codes and bearer tokens. A 6-digit code hashed with plain
// SHA-256 falls to a million guesses, so the MAC is keyed. The key is derived
// from the blind-index key with HKDF-SHA256 (info "steward/secret-hash/v1")
// rather than being the blind-index key itself, so a secret hash can never equal
// the blind index of the same string, whatever kinds callers choose, and no file
// format change is needed. Compare hashes with VerifySecret. kind follows the
// rules of BlindIndex and panics alike.
func (r *Keyring) HashSecret(kind, secret string) []byte {
	return r.secret.sum(kind, secret)
}

// VerifySecret reports, in constant time, whether secret hashes to hash under
// kind, as HashSecret computes it.
func (r *Keyring) VerifySecret(kind, secret string, hash []byte) bool {
	return hmac.Equal(r.HashSecret(kind, secret), hash)
}

func deriveSecretKey(blindKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, blindKey, nil, secretKeyInfo, KeySize)
	if err != nil {
		panic(err) // only for lengths beyond 255 hash sizes
	}
	return k
}

// macPool reuses HMAC states: hmac.New per call costs about 4× the MAC itself
// (PERF-LIMITS.md).
type macPool struct {
	pool sync.Pool // of *pooledMAC
}

type pooledMAC struct {
	h   hash.Hash
	buf []byte // kind || 0x00 || value, so Write needs no string conversion
}

func newMACPool(key []byte) *macPool {
	key = append([]byte(nil), key...)
	p := &macPool{}
	p.pool.New = func() any {
		return &pooledMAC{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 128)}
	}
	return p
}

func (p *macPool) sum(kind, value string) []byte {
	if kind == "" || strings.IndexByte(kind, 0) >= 0 {
		panic("keyring: blind index or secret kind is empty or contains a NUL byte")
	}
	m := p.pool.Get().(*pooledMAC)
	m.h.Reset()
	m.buf = append(m.buf[:0], kind...)
	m.buf = append(m.buf, 0)
	m.buf = append(m.buf, value...)
	m.h.Write(m.buf)
	out := m.h.Sum(make([]byte, 0, IndexSize))
	clear(m.buf) // the value may be PI or a secret
	if cap(m.buf) > maxPooledBuf {
		m.buf = nil
	}
	p.pool.Put(m)
	return out
}
