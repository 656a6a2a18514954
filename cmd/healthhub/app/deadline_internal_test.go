package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyIdleDeadline: a body that stops arriving ends the request after
// the idle time; a body that arrives, and a request without one, leave the
// handler all the time it takes (no deadline cancels its context).
func TestBodyIdleDeadline(t *testing.T) {
	const idle = 200 * time.Millisecond
	srv := httptest.NewServer(bodyIdleDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		select { // longer than idle, after the body
		case <-time.After(3 * idle):
			fmt.Fprint(w, "ok")
		case <-r.Context().Done():
			http.Error(w, "canceled", http.StatusServiceUnavailable)
		}
	}), idle))
	defer srv.Close()
	for _, body := range []string{"", `{"resourceType":"Patient"}`} {
		method := http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s taking %s after its body: %d %s, want 200", method, 3*idle, resp.StatusCode, got)
		}
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	_ = conn.SetReadDeadline(time.Now().Add(20 * idle))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a stalled body held the request for %s", 20*idle)
	}
	if !strings.Contains(line, "400") && err == nil {
		t.Errorf("a stalled body: %q, want a 400 or a closed connection", line)
	}
}
