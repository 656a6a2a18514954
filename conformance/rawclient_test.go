package conformance_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawConn is one keep-alive HTTP/1.1 connection written and read by hand: a
// load generator as lean as wrk. On two cores the client shares the CPU the
// server is measured on, and net/http's client costs about as much per
// request as the server's whole handling of a read (BENCHMARKS.md), so the
// HTTP benchmarks use this by default (HEALTHHUB_BENCH_CLIENT=nethttp for
// the net/http client).
type rawConn struct {
	addr, host string
	bearer     string // "Bearer ..." or "" (auth off)
	conn       net.Conn
	r          *bufio.Reader
	w          []byte
}

func newRawConn(base, token string) (*rawConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	c := &rawConn{addr: u.Host, host: u.Host}
	if token != "" {
		c.bearer = "Bearer " + token
	}
	return c, nil
}

func (c *rawConn) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends one request and reads its response into buf (reused): the
// status and the body.
func (c *rawConn) do(method, target string, body, buf []byte) (int, []byte, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, buf, err
		}
		c.conn, c.r = conn, bufio.NewReaderSize(conn, 64<<10)
	}
	u, err := url.Parse(target)
	if err != nil {
		return 0, buf, err
	}
	w := append(c.w[:0], method...)
	w = append(append(append(w, ' '), u.RequestURI()...), " HTTP/1.1\r\nHost: "...)
	w = append(append(w, c.host...), "\r\nAccept: application/fhir+json\r\n"...)
	if c.bearer != "" {
		w = append(append(append(w, "Authorization: "...), c.bearer...), "\r\n"...)
	}
	if body != nil {
		w = append(w, "Content-Type: application/fhir+json\r\nContent-Length: "...)
		w = append(strconv.AppendInt(w, int64(len(body)), 10), "\r\n"...)
	}
	w = append(append(w, "\r\n"...), body...)
	c.w = w
	if _, err := c.conn.Write(w); err != nil {
		c.Close()
		return 0, buf, err
	}
	status, out, keep, err := readResponse(c.r, buf)
	if err != nil || !keep {
		c.Close()
	}
	return status, out, err
}

// readResponse reads a status line, headers and a body sized by
// Content-Length or chunked.
func readResponse(r *bufio.Reader, buf []byte) (status int, body []byte, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, buf, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, buf, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, buf, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keep := -1, false, true
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return status, buf, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return status, buf, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	body = buf[:0]
	switch {
	case chunked:
		for {
			sz, err := r.ReadSlice('\n')
			if err != nil {
				return status, body, false, err
			}
			n, err := strconv.ParseInt(string(bytes.TrimRight(sz, "\r\n")), 16, 32)
			if err != nil {
				return status, body, false, fmt.Errorf("bad chunk size %q", sz)
			}
			if n == 0 {
				_, err := r.ReadSlice('\n') // no trailers from this server
				return status, body, keep, err
			}
			if body, err = readN(r, body, int(n)+2); err != nil {
				return status, body, false, err
			}
			body = body[:len(body)-2] // the chunk's CRLF
		}
	case length >= 0:
		body, err = readN(r, body, length)
		return status, body, keep, err
	}
	return status, body, false, errors.New("a response without a length")
}

func readN(r *bufio.Reader, b []byte, n int) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, n)...)
	_, err := io.ReadFull(r, b[start:])
	return b, err
}
