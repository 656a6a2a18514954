package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"healthhub/auth"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

const importUsage = `Usage: healthhub import [flags] FILE|DIR ...

Loads FHIR NDJSON (one resource a line, as Bulk Data exports and Synthea
write) into the data directory; a DIR means its *.ndjson files (but not
log.ndjson, an export log). Stop the server first.

Every line is validated as a REST update would be and keeps its id: a line
whose Type/id is stored already becomes a new version of it, or nothing when
its content is unchanged, so running the same import twice changes nothing.
Conditional references (Practitioner?identifier=system|value) are resolved
to the one resource they match. Invalid lines are reported as file:line:
reason and skipped; the exit status is 1 when any line failed.

Flags:
`

// importOrder: files of these types go first (in this order), so that the
// targets of conditional references are known before the lines that use
// them; the second pass covers any other order, at the cost of memory.
var importOrder = []string{"Organization", "Location", "Practitioner", "PractitionerRole", "Patient"}

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", DefaultDataDir, "directory of the database file, created if missing")
	strict := fs.Bool("strict", false, "stop at the first invalid line (the chunk in progress is not committed)")
	chunk := fs.Int("chunk", interaction.DefaultImportChunk, "resources per transaction")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "healthhub import: name at least one NDJSON file or directory\n\n")
		fs.Usage()
		return 2
	}
	if *chunk < 1 {
		fmt.Fprintf(stderr, "healthhub import: --chunk %d: at least 1\n", *chunk)
		return 2
	}
	files, err := importFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "healthhub import: %v\n", err)
		return 1
	}
	reg, err := search.Load()
	if err != nil {
		fmt.Fprintf(stderr, "healthhub import: %v\n", err)
		return 1
	}
	st, err := openStore(*dataDir, reg, store.Options{InitialMmapSize: interaction.ImportMmapSize})
	if err != nil {
		fmt.Fprintf(stderr, "healthhub import: %v\n", err)
		return 1
	}
	defer st.Close()

	// See ImportGCPercent. Serve keeps the default.
	defer debug.SetGCPercent(debug.SetGCPercent(interaction.ImportGCPercent))
	prog := newProgress(stderr)
	im := interaction.New(st, validate.New(), reg).NewImporter(auth.Local(), interaction.ImportOptions{
		Strict:    *strict,
		ChunkSize: *chunk,
		Report: func(e *interaction.LineError) {
			prog.clear()
			fmt.Fprintln(stderr, withoutValues(e.Error()))
		},
		Progress: prog.update,
	})
	stats, err := runImport(ctx, im, files)
	prog.clear()
	elapsed := time.Since(prog.start)
	fmt.Fprintf(stdout, "imported %d of %d resources in %s (%.0f resources/s): %d created, %d updated, %d unchanged, %d failed\n",
		stats.Created+stats.Updated+stats.Unchanged, stats.Read, elapsed.Round(time.Millisecond), float64(stats.Read)/elapsed.Seconds(),
		stats.Created, stats.Updated, stats.Unchanged, stats.Failed)
	switch {
	case errors.Is(err, interaction.ErrStrictStop):
		fmt.Fprintln(stderr, "healthhub import: stopped at the first invalid line (--strict); the chunk in progress was not committed")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "healthhub import: %v (chunks committed before it stay)\n", err)
		return 1
	case stats.Failed > 0:
		return 1
	}
	return 0
}

func runImport(ctx context.Context, im *interaction.Importer, files []string) (interaction.ImportStats, error) {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return im.Stats(), err
		}
		err = im.Read(ctx, name, f)
		f.Close()
		if err != nil {
			return im.Stats(), err
		}
	}
	return im.Finish(ctx)
}

// importFiles expands directories to their *.ndjson files and puts the
// files of importOrder's types first; otherwise the order given stays.
func importFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(a, "*.ndjson"))
		if err != nil {
			return nil, err
		}
		matches = slices.DeleteFunc(matches, func(m string) bool { return filepath.Base(m) == "log.ndjson" })
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s holds no *.ndjson files", a)
		}
		files = append(files, matches...)
	}
	rank := func(name string) int {
		typ, _, _ := strings.Cut(filepath.Base(name), ".")
		if i := slices.Index(importOrder, typ); i >= 0 {
			return i
		}
		return len(importOrder)
	}
	slices.SortStableFunc(files, func(a, b string) int { return rank(a) - rank(b) })
	return files, nil
}

// progress writes the running counts: rewritten in place on a terminal,
// a plain line every progressEvery otherwise (logs of long imports).
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	shown bool // a \r line is on screen
}

const progressEvery = 10 * time.Second

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	now := time.Now()
	return &progress{w: w, tty: tty, start: now, last: now}
}

func (p *progress) update(s interaction.ImportStats) {
	p.show(func(elapsed time.Duration) string {
		return fmt.Sprintf("%d resources, %.0f/s, %d errors", s.Read, float64(s.Read)/elapsed.Seconds(), s.Failed)
	})
}

// show writes the line line makes (given the time since the start): in
// place on a terminal, else as a line of its own every progressEvery, so
// that a log file gets lines, not one line of carriage returns.
func (p *progress) show(line func(elapsed time.Duration) string) {
	now := time.Now()
	if !p.tty && now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	text := line(now.Sub(p.start))
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", text)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, text)
}

// clear removes the in-place line before other output.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// quoted is a Go-quoted string in a message: how diagnostics quote the
// values they are about.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// withoutValues is a line's error for stderr, which ends up in job logs:
// the values it quotes are patient data (a birth date, an MRN in a
// conditional reference), so they become "…"; the file, the line, the
// element and the rule broken stay, which is what finds the line.
func withoutValues(msg string) string { return quoted.ReplaceAllString(msg, `"…"`) }
