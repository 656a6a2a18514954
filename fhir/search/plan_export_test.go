package search

import "time"

// White-box hook for the black-box plan tests (plan_test.go): ap on dates
// measures from now, so the tests fix the clock.

// SetNowForTest makes the planner's clock return now until restore is
// called. Tests that use it must not run in parallel with others that plan
// ap dates.
func SetNowForTest(now time.Time) (restore func()) {
	old := nowFunc
	nowFunc = func() time.Time { return now }
	return func() { nowFunc = old }
}
