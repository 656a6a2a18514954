package interaction_test

import (
	"regexp"
	"testing"
	"time"

	"healthhub/fhir/interaction"
)

// TestNewID: ids are UUID v7, unique, and sort by creation time (what keeps
// index writes on few pages).
func TestNewID(t *testing.T) {
	v7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 2000; i++ {
		id := interaction.NewID()
		if !v7.MatchString(id) {
			t.Fatalf("%q is not a UUID v7", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
		if i%500 == 0 {
			if id <= prev {
				t.Fatalf("%q made after %q sorts before it", id, prev)
			}
			prev = id
			time.Sleep(2 * time.Millisecond)
		}
	}
}
