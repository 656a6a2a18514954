package validate

import "testing"

// CrossCheck runs the schema library on every resource during t, besides the
// walk, failing validation when the two disagree (see crossCheck).
func CrossCheck(t testing.TB) {
	old := crossCheck.Swap(true)
	t.Cleanup(func() { crossCheck.Store(old) })
}

// RequiredPrimitives exposes the hand table to the black-box tests.
var RequiredPrimitives = requiredPrimitives
