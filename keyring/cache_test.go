package keyring

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// countingStore counts GetKey calls that reach the store.
type countingStore struct {
	*MemoryKeyStore
	gets int
}

func (c *countingStore) GetKey(ctx context.Context, id string) (WrappedKey, error) {
	c.gets++
	return c.MemoryKeyStore.GetKey(ctx, id)
}

func TestCachedKeyStore(t *testing.T) {
	ctx := context.Background()
	inner := &countingStore{MemoryKeyStore: NewMemoryKeyStore()}
	cs := CachedKeyStore(inner, time.Minute, 0).(*cachedKeyStore)
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	cs.now = func() time.Time { return now }
	kf, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	r := New(kf, cs)
	if _, err := r.CreateSubjectKey(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.SubjectKey(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
	}
	if inner.gets != 0 {
		t.Fatalf("store reads = %d, want 0 (the key just created is cached)", inner.gets)
	}
	now = now.Add(61 * time.Second)
	r.SubjectKey(ctx, "s1")
	r.SubjectKey(ctx, "s1")
	if inner.gets != 1 {
		t.Fatalf("store reads after ttl = %d, want 1", inner.gets)
	}
	if _, err := r.DestroySubjectKey(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubjectKey(ctx, "s1"); steward.ErrorCode(err) != steward.EGONE {
		t.Fatalf("after destroy through the cache: %v, want EGONE at once", err)
	}
}
