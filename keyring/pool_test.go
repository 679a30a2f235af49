package keyring

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stewardhq/steward"
)

// failingStore fails PutKeys while fail is set, counting the batches asked for.
type failingStore struct {
	*MemoryKeyStore
	fail    atomic.Bool
	batches atomic.Int64
	gate    chan struct{} // if not nil, PutKeys waits for it
}

func (s *failingStore) PutKeys(ctx context.Context, keys []WrappedKey) error {
	s.batches.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.fail.Load() {
		return steward.Errorf(steward.EUNAVAILABLE, "the key store does not answer")
	}
	return s.MemoryKeyStore.PutKeys(ctx, keys)
}

func TestNewSubjectKey(t *testing.T) {
	ctx := context.Background()
	r, ks, _ := newTestKeyring(t)
	var ids []string
	for range poolBatch + 10 {
		k, err := r.NewSubjectKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.SubjectID())
		// The key is stored under the new subject and opens what it sealed.
		sealed, err := k.Seal("nickname", []byte(`"张伟"`))
		if err != nil {
			t.Fatal(err)
		}
		again, err := r.SubjectKey(ctx, k.SubjectID())
		if err != nil {
			t.Fatalf("stored key of %s: %v", k.SubjectID(), err)
		}
		if again.KeyID() != k.KeyID() {
			t.Fatalf("stored key %s, handed out %s", again.KeyID(), k.KeyID())
		}
		if pt, err := again.Open("nickname", sealed); err != nil || string(pt) != `"张伟"` {
			t.Fatalf("open with the stored key: %q, %v", pt, err)
		}
	}
	if !slices.IsSorted(ids) {
		t.Errorf("subject ids not handed out in ascending order: %v", ids[:5])
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("a subject id was handed out twice")
	}
	// A destroyed pooled subject's key is gone like any other.
	if _, err := r.DestroySubjectKey(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	_, err := ks.GetKey(ctx, ids[0])
	wantCode(t, "key of a destroyed subject", err, steward.EGONE)
}

func TestNewSubjectKeyConcurrent(t *testing.T) {
	r, _, _ := newTestKeyring(t)
	const n = 3*poolBatch + 7
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := r.NewSubjectKey(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.SubjectID()
		}()
	}
	wg.Wait()
	slices.Sort(ids)
	if len(slices.Compact(ids)) != n {
		t.Errorf("%d distinct subject ids for %d keys", len(slices.Compact(ids)), n)
	}
}

func TestNewSubjectKeyStoreFailure(t *testing.T) {
	ctx := context.Background()
	kf, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	ks := &failingStore{MemoryKeyStore: NewMemoryKeyStore()}
	r := New(kf, ks)
	ks.fail.Store(true)
	_, err = r.NewSubjectKey(ctx)
	wantCode(t, "new key while the store fails", err, steward.EUNAVAILABLE)
	ks.fail.Store(false)
	k, err := r.NewSubjectKey(ctx)
	if err != nil {
		t.Fatalf("new key once the store answers: %v", err)
	}
	if _, err := ks.GetKey(ctx, k.SubjectID()); err != nil {
		t.Fatalf("the key handed out is not stored: %v", err)
	}
	// Nothing made in the failed batch was stored or handed out.
	if got := len(ks.keys); got != poolBatch {
		t.Errorf("%d keys stored, want one batch of %d", got, poolBatch)
	}
}

func TestNewSubjectKeyCanceledWhileWaiting(t *testing.T) {
	kf, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	ks := &failingStore{MemoryKeyStore: NewMemoryKeyStore(), gate: make(chan struct{})}
	r := New(kf, ks)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.NewSubjectKey(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled while the batch is stored: %v, want context.Canceled", err)
	}
	close(ks.gate) // the batch is stored all the same, for the next caller
	k, err := r.NewSubjectKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := ks.batches.Load(); got != 1 {
		t.Errorf("%d batches asked for, want 1: the canceled caller's batch serves the next", got)
	}
	if _, err := ks.GetKey(context.Background(), k.SubjectID()); err != nil {
		t.Fatal(err)
	}
}
