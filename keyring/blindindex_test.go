package keyring

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"testing"
)

func TestBlindIndex(t *testing.T) {
	r, _, kf := newTestKeyring(t)
	other, _, _ := newTestKeyring(t)
	const phone = "+8613800138000"

	a := r.BlindIndex("phone", phone)
	if len(a) != IndexSize || IndexSize != 32 {
		t.Fatalf("len = %d, want 32", len(a))
	}
	// The documented construction: HMAC-SHA256(blind key, kind || 0x00 || value).
	m := hmac.New(sha256.New, kf.blindKey)
	m.Write([]byte("phone\x00" + phone))
	if want := m.Sum(nil); !bytes.Equal(a, want) {
		t.Errorf("BlindIndex = %x, want HMAC(kind||0||value) %x", a, want)
	}

	for _, tt := range []struct {
		name string
		b    []byte
		same bool
	}{
		{"same kind and value", r.BlindIndex("phone", phone), true},
		{"same again, from a fresh Keyring on the same key file", New(kf, NewMemoryKeyStore()).BlindIndex("phone", phone), true},
		{"other kind", r.BlindIndex("contact", phone), false},
		{"other value", r.BlindIndex("phone", "+8613800138001"), false},
		{"other key file", other.BlindIndex("phone", phone), false},
		{"kind/value boundary moved", r.BlindIndex("phone\x01", phone[1:]), false},
		{"secret hash of the same kind and value", r.HashSecret("phone", phone), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := bytes.Equal(a, tt.b); got != tt.same {
				t.Errorf("equal = %v, want %v", got, tt.same)
			}
		})
	}

	for _, bad := range []string{"", "ph\x00one"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("BlindIndex(%q, …) did not panic", bad)
				}
			}()
			r.BlindIndex(bad, phone)
		}()
	}
}

// Pooled MACs must not leak state between calls, also under concurrency and
// after a long value.
func TestBlindIndexPoolConcurrent(t *testing.T) {
	r, _, _ := newTestKeyring(t)
	want := r.BlindIndex("wechat", "wx-openid-123")
	r.BlindIndex("wechat", string(bytes.Repeat([]byte("z"), 10000)))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if got := r.BlindIndex("wechat", "wx-openid-123"); !bytes.Equal(got, want) {
					t.Error("BlindIndex not deterministic under concurrency")
					return
				}
				r.BlindIndex("contact", "+8613900000000")
			}
		})
	}
	wg.Wait()
}

func TestHashSecret(t *testing.T) {
	r, _, kf := newTestKeyring(t)
	other, _, _ := newTestKeyring(t)
	h := r.HashSecret("otp", "123456")
	if len(h) != 32 {
		t.Fatalf("len = %d, want 32", len(h))
	}
	plain := sha256.Sum256([]byte("otp\x00123456"))
	m := hmac.New(sha256.New, kf.blindKey)
	m.Write([]byte("otp\x00123456"))
	for _, tt := range []struct {
		name string
		b    []byte
		same bool
	}{
		{"same", r.HashSecret("otp", "123456"), true},
		{"other code", r.HashSecret("otp", "123457"), false},
		{"other kind", r.HashSecret("token", "123456"), false},
		{"other key file", other.HashSecret("otp", "123456"), false},
		{"unkeyed SHA-256", plain[:], false},
		{"blind-index key used directly", m.Sum(nil), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := bytes.Equal(h, tt.b); got != tt.same {
				t.Errorf("equal = %v, want %v", got, tt.same)
			}
		})
	}
	if !r.VerifySecret("otp", "123456", h) {
		t.Error("VerifySecret rejects the right code")
	}
	if r.VerifySecret("otp", "654321", h) || r.VerifySecret("token", "123456", h) || r.VerifySecret("otp", "123456", h[:31]) {
		t.Error("VerifySecret accepts a wrong code, kind or truncated hash")
	}
}
