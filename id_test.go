package steward_test

import (
	"regexp"
	"testing"

	"github.com/stewardhq/steward"
)

// TestNewID checks ids are RFC 9562 version 7 UUIDs and distinct.
func TestNewID(t *testing.T) {
	v7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := steward.NewID()
		if !v7.MatchString(id) {
			t.Fatalf("%q is not a version 7 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q repeated", id)
		}
		seen[id] = true
	}
}
