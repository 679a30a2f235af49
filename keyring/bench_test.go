package keyring

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"testing"
)

// Compare ratios within one run, not absolute times across runs (PERF-LIMITS.md).

func BenchmarkSeal256(b *testing.B) {
	r, _, _ := newTestKeyring(b)
	k := subjectKey(b, r, "subj-1")
	pt := bytes.Repeat([]byte("x"), 256)
	b.SetBytes(256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal("nickname", pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen256(b *testing.B) {
	r, _, _ := newTestKeyring(b)
	k := subjectKey(b, r, "subj-1")
	sealed, err := k.Seal("nickname", bytes.Repeat([]byte("x"), 256))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open("nickname", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubjectKeyOpen256 is a read's whole key path: fetch the row from an
// in-memory store, unwrap the DEK, set up AES-GCM, open one 256 B value.
func BenchmarkSubjectKeyOpen256(b *testing.B) {
	ctx := context.Background()
	r, _, _ := newTestKeyring(b)
	k := subjectKey(b, r, "subj-1")
	sealed, err := k.Seal("nickname", bytes.Repeat([]byte("x"), 256))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		k, err := r.SubjectKey(ctx, "subj-1")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Open("nickname", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	r, _, _ := newTestKeyring(b)
	b.ReportAllocs()
	for b.Loop() {
		r.BlindIndex("phone", "+8613800138000")
	}
}

func BenchmarkBlindIndexParallel(b *testing.B) {
	r, _, _ := newTestKeyring(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.BlindIndex("phone", "+8613800138000")
		}
	})
}

// BenchmarkHMACNewPerCall is the baseline the MAC pool avoids.
func BenchmarkHMACNewPerCall(b *testing.B) {
	_, _, kf := newTestKeyring(b)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, kf.blindKey)
		m.Write([]byte("phone\x00+8613800138000"))
		m.Sum(nil)
	}
}

func BenchmarkHashSecret(b *testing.B) {
	r, _, _ := newTestKeyring(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.HashSecret("otp", strconv.Itoa(100000+i%900000))
		i++
	}
}
