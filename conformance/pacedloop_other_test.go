//go:build !linux

package conformance_test

import (
	"errors"
	"time"
)

// pacedLoop is Linux-only (epoll); elsewhere the paced benchmarks use
// rawConn from a goroutine per connection.
func pacedLoop(base, bearer string, conns int, interval time.Duration, n int, next func() (method, target string, body []byte), want int) ([]time.Duration, error) {
	return nil, errors.ErrUnsupported
}
