package conformance_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// pacedLoop is the paced load generator for GETs: every connection in one
// epoll loop on one thread, as wrk2 runs them. The goroutine-per-connection
// client (rawConn) costs ~57 µs of CPU a request when paced, as much as
// half the server's: 32 goroutines sleeping on timers and woken by the
// netpoller keep the Go scheduler busy. On two cores that CPU is taken
// from the server under test, and shows in its tail latency.
//
// Each connection sends on its own schedule, every interval, spread evenly
// over one interval; a request whose connection is still waiting for the
// previous response goes as soon as that arrives. A latency runs from the
// time the request was due, not sent, so a server that falls behind is
// charged for the wait (no coordinated omission). epoll_pwait2 sleeps to
// the next due time with nanosecond precision.
func pacedLoop(base, bearer string, conns int, interval time.Duration, n int, next func() (method, target string, body []byte), want int) ([]time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	host, err := hostOf(base)
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(host)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("paced loop: %q is not an IPv4 host:port", host)
	}
	sa := &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(epfd)
	type loopConn struct {
		fd       int
		due      time.Time // when the next request is due
		inFlight time.Time // due time of the request sent; zero when idle
		resp     []byte
	}
	cs := make([]*loopConn, conns)
	byFd := map[int32]*loopConn{}
	start := time.Now()
	for i := range cs {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer syscall.Close(fd)
		if err := syscall.Connect(fd, sa); err != nil {
			return nil, err
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
			return nil, err
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, err
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, err
		}
		cs[i] = &loopConn{fd: fd, due: start.Add(time.Duration(i) * interval / time.Duration(conns)), resp: make([]byte, 0, 64<<10)}
		byFd[int32(fd)] = cs[i]
	}
	latencies := make([]time.Duration, 0, n)
	events := make([]syscall.EpollEvent, conns)
	var req []byte
	sent := 0
	for len(latencies) < n {
		now := time.Now()
		var wake time.Time // the earliest due time of an idle connection
		for _, c := range cs {
			if !c.inFlight.IsZero() || sent == n {
				continue
			}
			if c.due.After(now) {
				if wake.IsZero() || c.due.Before(wake) {
					wake = c.due
				}
				continue
			}
			method, target, body := next()
			if method != "GET" || body != nil {
				return nil, fmt.Errorf("paced loop: %s with a body: it sends GETs only", method)
			}
			req = append(req[:0], "GET "...)
			req = append(append(append(req, target...), " HTTP/1.1\r\nHost: "...), host...)
			req = append(req, "\r\nAccept: application/fhir+json\r\n"...)
			if bearer != "" {
				req = append(append(append(req, "Authorization: "...), bearer...), "\r\n"...)
			}
			req = append(req, "\r\n"...)
			// A request is far smaller than the socket buffer, which the
			// previous response has been read from: one write takes it.
			if w, err := syscall.Write(c.fd, req); err != nil || w != len(req) {
				return nil, fmt.Errorf("paced loop: write %d of %d bytes: %v", w, len(req), err)
			}
			c.inFlight, c.due = c.due, c.due.Add(interval)
			sent++
		}
		timeout := time.Duration(-1) // no idle connection: wait for responses
		if !wake.IsZero() {
			timeout = max(0, time.Until(wake))
		}
		k, err := epollWait(epfd, events, timeout)
		if err != nil {
			return nil, err
		}
		for _, ev := range events[:k] {
			c := byFd[ev.Fd]
			for {
				if len(c.resp) == cap(c.resp) {
					c.resp = append(c.resp, 0)[:len(c.resp)]
				}
				r, err := syscall.Read(c.fd, c.resp[len(c.resp):cap(c.resp)])
				if err == syscall.EAGAIN {
					break
				}
				if err != nil || r == 0 {
					return nil, fmt.Errorf("paced loop: read: %v (the server closed the connection?)", err)
				}
				c.resp = c.resp[:len(c.resp)+r]
			}
			status, size, err := responseSize(c.resp)
			if err != nil {
				return nil, err
			}
			if size == 0 || len(c.resp) < size {
				continue // not all here yet
			}
			if len(c.resp) > size || c.inFlight.IsZero() {
				return nil, errors.New("paced loop: a response nobody asked for")
			}
			if status != want {
				return nil, fmt.Errorf("paced loop: status %d, want %d: %.300s", status, want, c.resp)
			}
			latencies = append(latencies, time.Since(c.inFlight))
			c.inFlight, c.resp = time.Time{}, c.resp[:0]
		}
	}
	return latencies, nil
}

// hostOf is the host:port of an http:// base URL.
func hostOf(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return "", fmt.Errorf("paced loop: base %q is not an http:// URL", base)
	}
	return u.Host, nil
}

// epollWait waits up to timeout (negative: for ever) with epoll_pwait2,
// whose timeout is a timespec rather than epoll_wait's milliseconds.
func epollWait(epfd int, events []syscall.EpollEvent, timeout time.Duration) (int, error) {
	const sysEpollPwait2 = 441 // x86-64 and arm64 alike
	var ts *syscall.Timespec
	if timeout >= 0 {
		t := syscall.NsecToTimespec(int64(timeout))
		ts = &t
	}
	for {
		n, _, errno := syscall.Syscall6(sysEpollPwait2, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(ts)), 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("epoll_pwait2: %w", errno)
		}
		return int(n), nil
	}
}

// responseSize parses the status and the length of the response at the
// start of b, headers and body; 0 while the headers are incomplete. The
// server sends Content-Length on every body.
func responseSize(b []byte) (status, size int, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, 0, nil
	}
	head := b[:end]
	if len(head) < 12 || !bytes.HasPrefix(head, []byte("HTTP/1.1 ")) {
		return 0, 0, fmt.Errorf("bad status line in %.100q", head)
	}
	if status, err = strconv.Atoi(string(head[9:12])); err != nil {
		return 0, 0, fmt.Errorf("bad status line in %.100q", head)
	}
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		name, value, _ := bytes.Cut(line, []byte(":"))
		if bytes.EqualFold(name, []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			if err != nil {
				return 0, 0, fmt.Errorf("bad Content-Length %q", value)
			}
			return status, end + 4 + n, nil
		}
	}
	return 0, 0, fmt.Errorf("a response without Content-Length: %.200q", head)
}
