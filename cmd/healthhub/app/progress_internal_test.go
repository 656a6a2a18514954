package app

// White-box: the import's progress line depends on whether stderr is a
// terminal, which a test cannot be; the two modes are checked on the
// struct.

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"healthhub/fhir/interaction"
)

func TestImportProgress(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out)
	if p.tty {
		t.Fatal("a buffer taken for a terminal")
	}
	// Not a terminal: nothing until progressEvery has passed, then a line.
	p.update(interaction.ImportStats{Read: 10})
	if out.Len() != 0 {
		t.Errorf("a line before %s: %q", progressEvery, out.String())
	}
	p.last = p.last.Add(-progressEvery)
	p.start = p.start.Add(-2 * time.Second)
	p.update(interaction.ImportStats{Read: 20, Failed: 1})
	if !regexp.MustCompile(`^20 resources, \d+/s, 1 errors\n$`).MatchString(out.String()) {
		t.Errorf("plain progress line %q", out.String())
	}
	p.clear()
	if !bytes.HasSuffix(out.Bytes(), []byte("errors\n")) {
		t.Errorf("clear wrote on a plain stream: %q", out.String())
	}

	// A terminal: every update rewrites the line in place; clear erases it.
	out.Reset()
	p = &progress{w: &out, tty: true, start: time.Now().Add(-time.Second), last: time.Now()}
	p.update(interaction.ImportStats{Read: 5})
	p.update(interaction.ImportStats{Read: 7, Failed: 2})
	if !regexp.MustCompile(`^\r\x1b\[K5 resources, \d+/s, 0 errors\r\x1b\[K7 resources, \d+/s, 2 errors$`).MatchString(out.String()) {
		t.Errorf("terminal progress %q", out.String())
	}
	p.clear()
	if !bytes.HasSuffix(out.Bytes(), []byte("\r\x1b[K")) || p.shown {
		t.Errorf("clear left the line: %q", out.String())
	}

}
