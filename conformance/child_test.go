package conformance_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childServer is healthhub running as a separate process: the test binary
// re-executed as `healthhub serve ...` (see TestMain). Unlike startServer,
// it can be killed, signalled, and fought over a data directory.
type childServer struct {
	t       testing.TB
	cmd     *exec.Cmd
	logPath string // the child's stderr (its slog output)
	dataDir string
	root    string // http://127.0.0.1:port, once serving
	base    string // root + /fhir
	done    chan struct{}
	state   *os.ProcessState // set when done is closed
}

// childStartTimeout bounds the wait for a child to log that it serves; the
// schema load takes ~0.2 s, more under -race.
const childStartTimeout = 20 * time.Second

// servingLine finds the address in the "healthhub serving" line, in text
// or (--log-format json) JSON.
var servingLine = regexp.MustCompile(`msg="healthhub serving" addr=(\S+)|"msg":"healthhub serving","addr":"([^"]+)"`)

// spawnChild starts `healthhub serve --data dataDir` plus args (default
// --addr 127.0.0.1:0) with its stderr in a file, and does not wait. The
// process is killed at cleanup if still running.
func spawnChild(t testing.TB, dataDir string, args ...string) *childServer {
	t.Helper()
	if strings.ContainsAny(dataDir, " \t\n") {
		t.Fatalf("data dir %q has white space: %s splits its arguments on it", dataDir, childEnv)
	}
	all := append([]string{"serve", "--data", dataDir}, args...)
	if !strings.Contains(strings.Join(args, " "), "--addr") {
		all = append(all, "--addr", "127.0.0.1:0")
	}
	if joined := strings.Join(args, " "); !strings.Contains(joined, "--clients") && !strings.Contains(joined, "--auth") {
		all = append(all, "--clients", harnessClientsFile, "--token-lifetime", "1h") // auth_harness_test.go
	}
	logf, err := os.CreateTemp(t.TempDir(), "child-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(all, " "))
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childServer{t: t, cmd: cmd, logPath: logf.Name(), dataDir: dataDir, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.done)
	}()
	t.Cleanup(func() {
		if !c.exited() {
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("child %d log (last lines):\n%s", cmd.Process.Pid, c.logTail(30))
		}
	})
	return c
}

// startChild spawns a child and waits until it serves and is ready.
func startChild(t testing.TB, dataDir string, args ...string) *childServer {
	t.Helper()
	c := spawnChild(t, dataDir, args...)
	if err := c.waitServing(childStartTimeout); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitServing reads the child's log until the "healthhub serving" line
// names the address, then polls /readyz.
func (c *childServer) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for c.root == "" {
		if m := servingLine.FindStringSubmatch(c.log()); m != nil {
			c.root = "http://" + m[1] + m[2]
			c.base = c.root + "/fhir"
			break
		}
		if c.exited() {
			return fmt.Errorf("the child exited (%v) before serving:\n%s", c.state, c.logTail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the child did not serve within %s:\n%s", timeout, c.logTail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(c.root + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the child at %s is not ready within %s (last: %v)", c.root, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *childServer) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the child to exit and returns its exit
// code (-1 when a signal ended it).
func (c *childServer) wait(timeout time.Duration) (int, error) {
	select {
	case <-c.done:
		return c.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("the child (pid %d) did not exit within %s", c.cmd.Process.Pid, timeout)
	}
}

func (c *childServer) signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("signal %v: %v", sig, err)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *childServer) kill() {
	c.t.Helper()
	c.signal(syscall.SIGKILL)
	if _, err := c.wait(10 * time.Second); err != nil {
		c.t.Fatal(err)
	}
}

// log is the child's stderr so far.
func (c *childServer) log() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	return string(b)
}

func (c *childServer) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(c.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// childDataDir is a fresh data directory for a child.
func childDataDir(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data")
}
