package steward_test

import (
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// TestOutboxMessageClaimFor: a serve process claims what it queues until the
// first attempt plus the lease; a command-line tool leaves it unclaimed.
func TestOutboxMessageClaimFor(t *testing.T) {
	due := time.Date(2026, 11, 29, 2, 0, 0, 123456000, time.UTC)
	cases := []struct {
		name, instance string
		wantBy         string
		wantUntil      time.Time
	}{
		{"serve process", "node-a", "node-a", due.Add(60 * time.Second)},
		{"command-line tool", "", "", time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &steward.OutboxMessage{ID: "m-1", NextAttemptAt: due, ClaimedBy: "stale", ClaimedUntil: due}
			m.ClaimFor(c.instance)
			if m.ClaimedBy != c.wantBy || !m.ClaimedUntil.Equal(c.wantUntil) {
				t.Errorf("ClaimFor(%q) = %q until %v, want %q until %v", c.instance, m.ClaimedBy, m.ClaimedUntil, c.wantBy, c.wantUntil)
			}
		})
	}
}
