package interaction_test

// Search benchmarks (issue 4, "Tests and speed").
//
// The data set: HEALTHHUB_BENCH_SCALE Patients (default 10000), ten times
// as many Observations (blood pressure panels, glucose and heart rates,
// a third each, over ten years), a tenth as many Encounters and as many
// Appointments, all generated deterministically from the templates in
// testdata/bench-*.json (modelled on the Synthea set) and written through
// the Service's write path (Update with the generator's ids: validated and
// indexed) by benchLoadWriters goroutines into a store whose group commit
// takes as many writes per transaction: index maintenance costs a commit
// roughly per page it dirties, so big batches load faster (BENCHMARKS.md).
// It is built once and cached on disk in HEALTHHUB_BENCH_DIR (default
// $TMPDIR/healthhub-bench-<scale>); a later run whose manifest matches
// reuses it. Nothing is built unless a search benchmark runs: `go test
// ./...` never touches it.
//
//	go test ./fhir/interaction -run '^$' -bench . -benchtime 200x
//	HEALTHHUB_BENCH_SCALE=100000 go test ./fhir/interaction -run '^$' -bench Search -benchtime 200x -timeout 120m
//
// Every search benchmark rotates over a set of probes (query values taken
// from the generated data), checks each probe's answer once against a count
// computed independently from the generator, then times the searches and
// reports the p50 and p99 latency over the timed iterations.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"healthhub/cmd/healthhub/app"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

const (
	benchSeed          = 20261124
	benchGenVersion    = 2 // bump when the generator or the index layout changes what is written
	benchDefaultScale  = 10000
	benchLoadWriters   = 10000 // also the store's MaxBatchSize while the data set is open
	benchProbes        = 64
	benchWriteWriters  = 32
	benchWriteTemplate = 4096 // distinct Observation bodies the write benchmarks cycle through
)

// The data spans ten years up to benchEnd; appointments run half a year
// beyond it.
var (
	benchEnd   = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	benchStart = benchEnd.AddDate(-10, 0, 0)
	benchZone  = time.FixedZone("", -5*3600)
)

// Random streams: one per kind of thing and index, so any resource can be
// regenerated alone, whatever order the loader wrote them in.
const (
	streamPatient = iota + 1
	streamObservation
	streamEncounter
	streamAppointment
	streamProbe
	streamPatientDetail     // a Patient's decoration: address, phone ...
	streamAppointmentDetail // an Appointment's decoration: reason, type ...
)

func benchRand(stream, i int) *rand.Rand {
	return rand.New(rand.NewPCG(benchSeed, uint64(stream)<<48|uint64(i)))
}

// benchUUID is a UUID v4 drawn from r: ids look like the ones the server
// assigns (interaction.NewID), so index keys have their real length.
func benchUUID(r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// Synthea-style names: a name and a number, so that families are many and
// a family search (a prefix match) finds a handful of patients.
var (
	benchFamilies = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
		"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
		"Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
		"Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
		"Medhurst", "Emmerich", "VonRueden", "Cummerata", "Upton", "Pfeffer", "Runte", "Streich", "Simonis", "Kuhlman"}
	benchMale   = []string{"James", "John", "Robert", "Michael", "William", "David", "Augustus", "Neville", "Joseph", "Charles", "Thomas", "Daniel", "Matthew", "Anthony", "Mark"}
	benchFemale = []string{"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Sumiko", "Larue", "Marybelle", "Jessica", "Sarah", "Karen", "Nancy", "Lisa"}
	benchCities = []struct{ city, zip string }{{"Olathe", "66018"}, {"Wichita", "67202"}, {"Topeka", "66603"}, {"Salina", "67401"}, {"Lawrence", "66044"}, {"Emporia", "66801"}, {"Haysville", "67060"}, {"Manhattan", "66502"}}
	benchStreet = []string{"Runte Underpass", "Kuhn Gate", "Schiller Way", "Bode Ramp", "Hane Loaf", "Reichert Mission", "Lang Landing", "Ondricka Parade"}
)

// benchPatient is what the searches and the checks need of a Patient.
type benchPatient struct {
	id, family, given, birthDate, ssn string
	male                              bool
}

func benchPatientAt(i int) benchPatient {
	r := benchRand(streamPatient, i)
	p := benchPatient{id: benchUUID(r), male: r.IntN(2) == 0}
	p.family = pick(r, benchFamilies) + strconv.Itoa(r.IntN(1000))
	if p.male {
		p.given = pick(r, benchMale) + strconv.Itoa(r.IntN(1000))
	} else {
		p.given = pick(r, benchFemale) + strconv.Itoa(r.IntN(1000))
	}
	born := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(91*365))
	p.birthDate = born.Format(time.DateOnly)
	n := (i*7919 + 104729) % 1000000 // a bijection on [0, 1e6): SSNs are unique up to a million patients
	p.ssn = fmt.Sprintf("999-%02d-%04d", n/10000, n%10000)
	return p
}

func (p benchPatient) display() string {
	if p.male {
		return "Mr. " + p.given + " " + p.family
	}
	return "Ms. " + p.given + " " + p.family
}

func benchPatientVals(i int, p benchPatient) map[string]string {
	r := benchRand(streamPatientDetail, i)
	sex, gender, prefix := "F", "female", "Ms."
	if p.male {
		sex, gender, prefix = "M", "male", "Mr."
	}
	c := pick(r, benchCities)
	middle := benchFemale
	if p.male {
		middle = benchMale
	}
	return map[string]string{
		"ID": p.id, "SEED": strconv.FormatInt(r.Int64(), 10), "MOTHER": pick(r, benchFemale) + strconv.Itoa(r.IntN(1000)) + " " + pick(r, benchFamilies) + strconv.Itoa(r.IntN(1000)),
		"SEX": sex, "BIRTHCITY": pick(r, benchCities).city, "DALY": strconv.FormatFloat(r.Float64()*5, 'f', -1, 64), "QALY": strconv.FormatFloat(20+r.Float64()*60, 'f', -1, 64),
		"SSN": p.ssn, "DL": fmt.Sprintf("S99%07d", r.IntN(10000000)), "PPN": fmt.Sprintf("X%08dX", r.IntN(100000000)),
		"FAMILY": p.family, "GIVEN": p.given, "MIDDLE": pick(r, middle) + strconv.Itoa(r.IntN(1000)), "PREFIX": prefix,
		"PHONE": fmt.Sprintf("555-%03d-%04d", r.IntN(1000), r.IntN(10000)), "GENDER": gender, "BIRTHDATE": p.birthDate,
		"LAT": strconv.FormatFloat(37+r.Float64()*3, 'f', -1, 64), "LON": strconv.FormatFloat(-101+r.Float64()*6, 'f', -1, 64),
		"LINE": fmt.Sprintf("%d %s Unit %d", 1+r.IntN(999), pick(r, benchStreet), 1+r.IntN(99)), "CITY": c.city, "ZIP": c.zip,
	}
}

// Observation kinds, a third each.
const (
	obsBloodPressure = iota
	obsGlucose
	obsHeartRate
	obsKinds
)

var benchObsCodes = [obsKinds]string{"85354-9", "2339-0", "8867-4"}

const loinc = "http://loinc.org"

type benchObservation struct {
	id      string
	patient int
	kind    int
	when    time.Time
}

func benchObservationAt(i, patients int) (benchObservation, *rand.Rand) {
	r := benchRand(streamObservation, i)
	o := benchObservation{id: benchUUID(r), patient: r.IntN(patients), kind: r.IntN(obsKinds)}
	o.when = benchStart.Add(time.Duration(r.Int64N(int64(benchEnd.Sub(benchStart)/time.Second))) * time.Second)
	return o, r
}

func benchObservationVals(o benchObservation, r *rand.Rand, p benchPatient) map[string]string {
	v := map[string]string{
		"ID": o.id, "PATIENT": p.id, "PATIENT_NAME": p.display(),
		"EFFECTIVE": o.when.In(benchZone).Format(time.RFC3339),
		"ISSUED":    o.when.Add(time.Duration(r.IntN(3600000)) * time.Millisecond).In(benchZone).Format("2006-01-02T15:04:05.000-07:00"),
	}
	switch o.kind {
	case obsBloodPressure:
		sys := 95 + r.Float64()*75
		v["SYSTOLIC"] = strconv.FormatFloat(sys, 'f', 0, 64)
		v["DIASTOLIC"] = strconv.FormatFloat(sys*(0.55+r.Float64()*0.15), 'f', 0, 64)
	case obsGlucose:
		v["PROFILE"], v["CATEGORY"], v["CATEGORY_DISPLAY"] = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab", "laboratory", "Laboratory"
		v["CODE"], v["DISPLAY"], v["UNIT"] = benchObsCodes[o.kind], "Glucose [Mass/volume] in Blood", "mg/dL"
		v["VALUE"] = strconv.FormatFloat(65+r.Float64()*120, 'f', 1, 64)
	case obsHeartRate:
		v["PROFILE"], v["CATEGORY"], v["CATEGORY_DISPLAY"] = "http://hl7.org/fhir/StructureDefinition/heartrate", "vital-signs", "Vital Signs"
		v["CODE"], v["DISPLAY"], v["UNIT"] = benchObsCodes[o.kind], "Heart rate", "/min"
		v["VALUE"] = strconv.Itoa(48 + r.IntN(70))
	}
	return v
}

// benchVisit is an Encounter or an Appointment: a patient and a start.
type benchVisit struct {
	id      string
	patient int
	start   time.Time
	minutes int
}

func benchEncounterAt(i, patients int) benchVisit {
	r := benchRand(streamEncounter, i)
	e := benchVisit{id: benchUUID(r), patient: r.IntN(patients)}
	e.start = benchStart.Add(time.Duration(r.Int64N(int64(benchEnd.Sub(benchStart)/time.Second))) * time.Second)
	e.minutes = 15 + r.IntN(226)
	return e
}

func benchAppointmentAt(i, patients int) benchVisit {
	r := benchRand(streamAppointment, i)
	a := benchVisit{id: benchUUID(r), patient: r.IntN(patients)}
	from := benchStart.AddDate(0, 6, 0)
	days := int(benchEnd.AddDate(0, 6, 0).Sub(from) / (24 * time.Hour))
	a.start = from.AddDate(0, 0, r.IntN(days)).Add(time.Duration(8*60+15*r.IntN(36)) * time.Minute) // 08:00 to 16:45, quarter hours
	a.minutes = 15 * (1 + r.IntN(4))
	return a
}

var benchReasons = []struct{ code, display string }{
	{"185349003", "Encounter for check up"}, {"390906007", "Follow-up encounter"}, {"38341003", "Hypertension"},
	{"44054006", "Diabetes mellitus type 2"}, {"162673000", "General examination of patient"},
}

func benchAppointmentVals(i int, a benchVisit, p benchPatient) map[string]string {
	r := benchRand(streamAppointmentDetail, i)
	status := "fulfilled"
	if !a.start.Before(benchEnd) {
		status = "booked"
	}
	reason := pick(r, benchReasons)
	typ, typDisplay := "ROUTINE", "Routine appointment - default if not valued"
	if r.IntN(4) == 0 {
		typ, typDisplay = "FOLLOWUP", "A follow up visit from a previous appointment"
	}
	return map[string]string{
		"ID": a.id, "STATUS": status, "APPT_TYPE": typ, "APPT_TYPE_DISPLAY": typDisplay,
		"REASON": reason.code, "REASON_DISPLAY": reason.display,
		"START": a.start.In(benchZone).Format(time.RFC3339), "END": a.start.Add(time.Duration(a.minutes) * time.Minute).In(benchZone).Format(time.RFC3339),
		"MINUTES": strconv.Itoa(a.minutes), "CREATED": a.start.AddDate(0, 0, -1-r.IntN(60)).In(benchZone).Format(time.RFC3339),
		"PATIENT": p.id, "PATIENT_NAME": p.display(),
		"NPI": fmt.Sprintf("99999%05d", r.IntN(100000)), "PRACTITIONER_NAME": "Dr. " + pick(r, benchFemale) + strconv.Itoa(r.IntN(1000)) + " " + pick(r, benchFamilies) + strconv.Itoa(r.IntN(1000)),
	}
}

func benchEncounterVals(e benchVisit, p benchPatient) map[string]string {
	return map[string]string{
		"ID": e.id, "PATIENT": p.id, "PATIENT_NAME": p.display(),
		"START": e.start.In(benchZone).Format(time.RFC3339), "END": e.start.Add(time.Duration(e.minutes) * time.Minute).In(benchZone).Format(time.RFC3339),
	}
}

// benchTemplate is a testdata/bench-*.json file, compacted, cut at its
// placeholders: "@@KEY@@" inside a string is replaced by the value, and a
// whole string "@@#KEY@@" by the raw value (a number).
type benchTemplate struct {
	lits []string // len(keys)+1
	keys []string
	hash [32]byte
}

func loadBenchTemplate(name string) (*benchTemplate, error) {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &benchTemplate{hash: sha256.Sum256(buf.Bytes())}
	s := buf.String()
	for {
		i := strings.Index(s, "@@")
		if i < 0 {
			break
		}
		j := strings.Index(s[i+2:], "@@")
		if j < 0 {
			return nil, fmt.Errorf("%s: unterminated placeholder", name)
		}
		key, lit, rest := s[i+2:i+2+j], s[:i], s[i+4+j:]
		if k, raw := strings.CutPrefix(key, "#"); raw {
			key, lit, rest = k, strings.TrimSuffix(lit, `"`), strings.TrimPrefix(rest, `"`)
		}
		t.lits, t.keys, s = append(t.lits, lit), append(t.keys, key), rest
	}
	t.lits = append(t.lits, s)
	return t, nil
}

func (t *benchTemplate) render(vals map[string]string) []byte {
	var b []byte
	for i, k := range t.keys {
		v, ok := vals[k]
		if !ok || strings.ContainsAny(v, "\"\\") {
			panic(fmt.Sprintf("bench template: no safe value for %q", k))
		}
		b = append(append(b, t.lits[i]...), v...)
	}
	return append(b, t.lits[len(t.lits)-1]...)
}

type benchTemplates struct {
	patient, observation, bloodPressure, encounter, appointment *benchTemplate
}

func loadBenchTemplates() (*benchTemplates, error) {
	var ts benchTemplates
	for _, x := range []struct {
		t    **benchTemplate
		name string
	}{{&ts.patient, "bench-patient.json"}, {&ts.observation, "bench-observation.json"}, {&ts.bloodPressure, "bench-observation-bp.json"},
		{&ts.encounter, "bench-encounter.json"}, {&ts.appointment, "bench-appointment.json"}} {
		t, err := loadBenchTemplate(x.name)
		if err != nil {
			return nil, err
		}
		*x.t = t
	}
	return &ts, nil
}

func (ts *benchTemplates) observationBody(i, patients int, pat func(int) benchPatient) []byte {
	o, r := benchObservationAt(i, patients)
	v := benchObservationVals(o, r, pat(o.patient))
	if o.kind == obsBloodPressure {
		return ts.bloodPressure.render(v)
	}
	return ts.observation.render(v)
}

// benchScale reads HEALTHHUB_BENCH_SCALE: the number of Patients.
func benchScale() (int, error) {
	s := os.Getenv("HEALTHHUB_BENCH_SCALE")
	if s == "" {
		return benchDefaultScale, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 {
		return 0, fmt.Errorf("HEALTHHUB_BENCH_SCALE=%q: want a number of patients, at least 100", s)
	}
	return n, nil
}

// benchData is the loaded data set and what the checks need to know of it,
// recomputed from the generator (cheap) rather than read back.
type benchData struct {
	svc      *interaction.Service
	patients []benchPatient
	obs      []benchObservation // id left empty: only the checks' fields
	obsOf    [][]int32          // patient -> its observations
	encOf    [][]int32          // patient -> its encounters
	apptOf   [][]int32          // patient -> its appointments
	enc      []benchVisit
	appt     []benchVisit
	loadInfo string
}

var (
	benchOnce sync.Once
	benchDS   *benchData
	benchErr  error
)

// loadBenchData builds the data set, or opens the cached one, once per
// process.
func loadBenchData(b *testing.B) *benchData {
	b.Helper()
	benchOnce.Do(func() { benchDS, benchErr = openBenchData() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDS
}

func openBenchData() (*benchData, error) {
	n, err := benchScale()
	if err != nil {
		return nil, err
	}
	dir := os.Getenv("HEALTHHUB_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "healthhub-bench-"+strconv.Itoa(n))
	}
	ts, err := loadBenchTemplates()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, t := range []*benchTemplate{ts.patient, ts.observation, ts.bloodPressure, ts.encounter, ts.appointment} {
		h.Write(t.hash[:])
	}
	reg, err := search.Load()
	if err != nil {
		return nil, err
	}
	// The index fingerprint too: a store indexed by other extraction code
	// would not open (store.ErrIndexerChanged); it is built again.
	manifest := fmt.Sprintf("healthhub search benchmark data\ngenerator %d seed %d templates %s\npatients %d observations %d encounters %d appointments %d\nindex %s\n",
		benchGenVersion, benchSeed, hex.EncodeToString(h.Sum(nil))[:16], n, 10*n, n/10, n/10, interaction.NewIndexer(reg).IndexFingerprint())
	manifestPath := filepath.Join(dir, "bench-manifest.txt")
	cached := false
	if old, err := os.ReadFile(manifestPath); err == nil && string(old) == manifest {
		cached = true
	} else {
		// Not built, built by another generator, or interrupted: start over.
		// Only our own files are removed, whatever the directory holds.
		_ = os.Remove(manifestPath)
		if err := os.Remove(filepath.Join(dir, store.FileName)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	st, err := store.Open(dir, store.Options{MaxBatchSize: benchLoadWriters, Indexer: interaction.NewIndexer(reg)})
	if err != nil {
		return nil, err
	}
	v := validate.New()
	d := &benchData{svc: interaction.New(st, v, reg)}
	d.generate(n)
	if cached {
		d.loadInfo = "cached in " + dir
	} else {
		start := time.Now()
		if err := d.load(ts, n); err != nil {
			st.Close()
			return nil, err
		}
		js := st.Stats()
		d.loadInfo = fmt.Sprintf("built in %s in %v; %d folds of the index journal, %.0f ms each on average",
			dir, time.Since(start).Round(time.Second), js.JournalFolds, float64(js.JournalFoldTime.Milliseconds())/float64(max(js.JournalFolds, 1)))
		if err := os.WriteFile(manifestPath, []byte(manifest), 0o600); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "bench data: %d patients, %d observations, %d encounters, %d appointments, %s (db %d MB)\n",
		n, len(d.obs), len(d.enc), len(d.appt), d.loadInfo, st.Stats().SizeBytes>>20)
	return d, nil
}

// generate recomputes the fields the checks need, in memory.
func (d *benchData) generate(n int) {
	d.patients = make([]benchPatient, n)
	parallelFor(n, func(i int) { d.patients[i] = benchPatientAt(i) })
	d.obs = make([]benchObservation, 10*n)
	parallelFor(10*n, func(i int) {
		o, _ := benchObservationAt(i, n)
		o.id = ""
		d.obs[i] = o
	})
	d.enc = make([]benchVisit, n/10)
	parallelFor(n/10, func(i int) { d.enc[i] = benchEncounterAt(i, n) })
	d.appt = make([]benchVisit, n/10)
	parallelFor(n/10, func(i int) { d.appt[i] = benchAppointmentAt(i, n) })
	d.obsOf, d.encOf, d.apptOf = make([][]int32, n), make([][]int32, n), make([][]int32, n)
	for i, o := range d.obs {
		d.obsOf[o.patient] = append(d.obsOf[o.patient], int32(i))
	}
	for i, e := range d.enc {
		d.encOf[e.patient] = append(d.encOf[e.patient], int32(i))
	}
	for i, a := range d.appt {
		d.apptOf[a.patient] = append(d.apptOf[a.patient], int32(i))
	}
}

func parallelFor(n int, fn func(i int)) {
	w := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for g := range w {
		wg.Go(func() {
			for i := g; i < n; i += w {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// load writes the data set through Service.Update (update-as-create, so
// ids are the generator's): validated and indexed, as a client's writes.
func (d *benchData) load(ts *benchTemplates, n int) error {
	ctx := context.Background()
	pat := func(i int) benchPatient { return d.patients[i] }
	steps := []struct {
		typ   string
		count int
		id    func(i int) string
		body  func(i int) []byte
	}{
		{"Patient", n, func(i int) string { return d.patients[i].id }, func(i int) []byte {
			return ts.patient.render(benchPatientVals(i, d.patients[i]))
		}},
		{"Observation", 10 * n, nil, nil},
		{"Encounter", n / 10, func(i int) string { return d.enc[i].id }, func(i int) []byte {
			return ts.encounter.render(benchEncounterVals(d.enc[i], d.patients[d.enc[i].patient]))
		}},
		{"Appointment", n / 10, func(i int) string { return d.appt[i].id }, func(i int) []byte {
			return ts.appointment.render(benchAppointmentVals(i, d.appt[i], d.patients[d.appt[i].patient]))
		}},
	}
	steps[1].body = func(i int) []byte { return ts.observationBody(i, n, pat) }
	steps[1].id = func(i int) string { o, _ := benchObservationAt(i, n); return o.id }
	for _, s := range steps {
		start := time.Now()
		var next, done atomic.Int64
		stop := make(chan struct{})
		go func() {
			t := time.NewTicker(15 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					k := done.Load()
					fmt.Fprintf(os.Stderr, "bench data: %s %d/%d (%.0f/s)\n", s.typ, k, s.count, float64(k)/time.Since(start).Seconds())
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, benchLoadWriters)
		for range benchLoadWriters {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= s.count {
						return
					}
					if _, _, err := d.svc.Update(ctx, auth.Local(), s.typ, s.id(i), s.body(i), 0); err != nil {
						errs <- fmt.Errorf("loading %s %d: %w", s.typ, i, err)
						return
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		close(stop)
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		el := time.Since(start)
		fmt.Fprintf(os.Stderr, "bench data: %d %s in %v (%.0f/s)\n", s.count, s.typ, el.Round(time.Millisecond), float64(s.count)/el.Seconds())
	}
	return nil
}

// A searchProbe is one search and what its answer must be.
type searchProbe struct {
	typ    string
	params url.Values
	total  int                                 // the expected number of matches
	check  func(*interaction.SearchPage) error // more checks; may be nil
}

// Date windows of the date searches, and the margin that keeps the probes
// away from their edges (so a probe's answer does not depend on how a
// date without a time zone is read).
var (
	obsFrom    = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	obsTo      = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	visitFrom  = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	edgeMargin = 2 * 24 * time.Hour
)

func nearEdge(t time.Time, edges ...time.Time) bool {
	for _, e := range edges {
		if d := t.Sub(e); d > -edgeMargin && d < edgeMargin {
			return true
		}
	}
	return false
}

// probePatients draws up to benchProbes distinct patients for which ok
// holds, the same on every run.
func (d *benchData) probePatients(salt int, ok func(p int) bool) []int {
	r := benchRand(streamProbe, salt)
	var out []int
	seen := map[int]bool{}
	for tries := 0; len(out) < benchProbes && tries < 100*benchProbes; tries++ {
		p := r.IntN(len(d.patients))
		if !seen[p] && ok(p) {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

func (d *benchData) countObs(p int, ok func(o benchObservation) bool) int {
	n := 0
	for _, i := range d.obsOf[p] {
		if ok(d.obs[i]) {
			n++
		}
	}
	return n
}

func (d *benchData) probesFamilyBirthdate() []searchProbe {
	var out []searchProbe
	for _, p := range d.probePatients(1, func(int) bool { return true }) {
		want := d.patients[p]
		fam := strings.ToLower(want.family)
		n := 0
		for _, q := range d.patients {
			if q.birthDate == want.birthDate && strings.HasPrefix(strings.ToLower(q.family), fam) {
				n++
			}
		}
		out = append(out, searchProbe{typ: "Patient", params: vals("family", want.family, "birthdate", want.birthDate), total: n})
	}
	return out
}

func (d *benchData) probesIdentifier() []searchProbe {
	var out []searchProbe
	for _, p := range d.probePatients(2, func(int) bool { return true }) {
		id := d.patients[p].id
		out = append(out, searchProbe{typ: "Patient", params: vals("identifier", "http://hl7.org/fhir/sid/us-ssn|"+d.patients[p].ssn), total: 1,
			check: func(pg *interaction.SearchPage) error { return wantIDs(pg.Matches, id) }})
	}
	return out
}

func (d *benchData) probesSubjectCode() []searchProbe {
	var out []searchProbe
	for _, p := range d.probePatients(3, func(p int) bool { return len(d.obsOf[p]) > 0 }) {
		kind := d.obs[d.obsOf[p][0]].kind
		n := d.countObs(p, func(o benchObservation) bool { return o.kind == kind })
		out = append(out, searchProbe{typ: "Observation", params: vals("subject", "Patient/"+d.patients[p].id, "code", loinc+"|"+benchObsCodes[kind]), total: n})
	}
	return out
}

func (d *benchData) probesPatientDateSort() []searchProbe {
	var out []searchProbe
	in := func(o benchObservation) bool { return !o.when.Before(obsFrom) && o.when.Before(obsTo) }
	ok := func(p int) bool {
		return d.countObs(p, in) > 0 && d.countObs(p, func(o benchObservation) bool { return nearEdge(o.when, obsFrom, obsTo) }) == 0
	}
	for _, p := range d.probePatients(4, ok) {
		out = append(out, searchProbe{typ: "Observation",
			params: vals("patient", d.patients[p].id, "date", "ge"+day(obsFrom), "date", "lt"+day(obsTo), "_sort", "-date"),
			total:  d.countObs(p, in), check: checkSortedDesc})
	}
	return out
}

func (d *benchData) probesVisits(typ, param, prefix string, salt int, visits []benchVisit, of [][]int32) []searchProbe {
	count := func(p int, ok func(v benchVisit) bool) int {
		n := 0
		for _, i := range of[p] {
			if ok(visits[i]) {
				n++
			}
		}
		return n
	}
	from := func(v benchVisit) bool { return !v.start.Before(visitFrom) }
	ok := func(p int) bool {
		return count(p, from) > 0 && count(p, func(v benchVisit) bool { return nearEdge(v.start, visitFrom) }) == 0
	}
	var out []searchProbe
	for _, p := range d.probePatients(salt, ok) {
		out = append(out, searchProbe{typ: typ, params: vals(param, prefix+d.patients[p].id, "date", "ge"+day(visitFrom)), total: count(p, from)})
	}
	return out
}

func (d *benchData) probesInclude() []searchProbe {
	var out []searchProbe
	for _, p := range d.probePatients(7, func(p int) bool { return len(d.obsOf[p]) > 0 }) {
		id := d.patients[p].id
		out = append(out, searchProbe{typ: "Observation", params: vals("subject", "Patient/"+id, "_include", "Observation:subject"), total: len(d.obsOf[p]),
			check: func(pg *interaction.SearchPage) error { return wantIDs(pg.Included, id) }})
	}
	return out
}

func (d *benchData) probesRevInclude() []searchProbe {
	var out []searchProbe
	for _, p := range d.probePatients(8, func(p int) bool { return len(d.obsOf[p]) > 0 }) {
		id, n := d.patients[p].id, len(d.obsOf[p])
		out = append(out, searchProbe{typ: "Patient", params: vals("_id", id, "_revinclude", "Observation:subject"), total: 1,
			check: func(pg *interaction.SearchPage) error {
				if len(pg.Included) != n {
					return fmt.Errorf("%d Observations included, want %d", len(pg.Included), n)
				}
				return nil
			}})
	}
	return out
}

// probesBroad: the first page of a code matching a third of the
// Observations. Without _total it is keyset-paged (no total, a cursor);
// with _total=accurate every match is listed and counted (a snapshot).
func (d *benchData) probesBroad(withTotal bool) []searchProbe {
	var count [obsKinds]int
	for _, o := range d.obs {
		count[o.kind]++
	}
	var out []searchProbe
	for k := range obsKinds {
		pr := searchProbe{typ: "Observation", params: vals("code", loinc+"|"+benchObsCodes[k], "_count", "20"), total: -1,
			check: func(pg *interaction.SearchPage) error {
				if len(pg.Matches) != 20 || !pg.Next || (pg.NextCursor == "") == !withTotal {
					return fmt.Errorf("a first page of %d (next %v, cursor %q), want 20 and a next page", len(pg.Matches), pg.Next, pg.NextCursor)
				}
				return nil
			}}
		if withTotal {
			pr.params.Set("_total", "accurate")
			pr.total = count[k]
		}
		out = append(out, pr)
	}
	return out
}

func wantIDs(rs []*fhir.Resource, ids ...string) error {
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, ids) {
		return fmt.Errorf("resources %v, want %v", got, ids)
	}
	return nil
}

func checkSortedDesc(pg *interaction.SearchPage) error {
	var prev time.Time
	for i, r := range pg.Matches {
		var o struct {
			Effective string `json:"effectiveDateTime"`
		}
		if err := json.Unmarshal(r.JSON, &o); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339, o.Effective)
		if err != nil {
			return err
		}
		if i > 0 && t.After(prev) {
			return fmt.Errorf("_sort=-date: %s after %s", t, prev)
		}
		prev = t
	}
	return nil
}

// BenchmarkSearch times the searches of issue 4 on the generated data set.
func BenchmarkSearch(b *testing.B) {
	cases := []struct {
		name   string
		probes func(d *benchData) []searchProbe
	}{
		{"PatientFamilyBirthdate", (*benchData).probesFamilyBirthdate},
		{"PatientIdentifier", (*benchData).probesIdentifier},
		{"ObservationSubjectCode", (*benchData).probesSubjectCode},
		{"ObservationPatientDateSort", (*benchData).probesPatientDateSort},
		{"EncounterPatientDate", func(d *benchData) []searchProbe {
			return d.probesVisits("Encounter", "patient", "", 5, d.enc, d.encOf)
		}},
		{"AppointmentActorDate", func(d *benchData) []searchProbe {
			return d.probesVisits("Appointment", "actor", "Patient/", 6, d.appt, d.apptOf)
		}},
		{"ObservationIncludeSubject", (*benchData).probesInclude},
		{"PatientRevIncludeObservation", (*benchData).probesRevInclude},
		{"ObservationCodeBroad", func(d *benchData) []searchProbe { return d.probesBroad(false) }},
		{"ObservationCodeBroadTotal", func(d *benchData) []searchProbe { return d.probesBroad(true) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := loadBenchData(b)
			probes := c.probes(d)
			if len(probes) == 0 {
				b.Fatal("no probe fits the data set")
			}
			benchSearch(b, d, probes)
		})
	}
}

func benchSearch(b *testing.B, d *benchData, probes []searchProbe) {
	ctx := context.Background()
	p := auth.Local()
	for _, pr := range probes { // the answers, once, untimed
		pg, err := d.svc.Search(ctx, p, pr.typ, pr.params, true)
		if err != nil {
			b.Fatalf("%s?%s: %v", pr.typ, pr.params.Encode(), err)
		}
		if pg.Total != pr.total || len(pg.Matches) == 0 {
			b.Fatalf("%s?%s: total %d (%d on the page), want %d", pr.typ, pr.params.Encode(), pg.Total, len(pg.Matches), pr.total)
		}
		if pr.check != nil {
			if err := pr.check(pg); err != nil {
				b.Fatalf("%s?%s: %v", pr.typ, pr.params.Encode(), err)
			}
		}
	}
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		pr := &probes[i%len(probes)]
		i++
		t0 := time.Now()
		pg, err := d.svc.Search(ctx, p, pr.typ, pr.params, true)
		lat = append(lat, time.Since(t0))
		if err != nil || len(pg.Matches) == 0 {
			b.Fatalf("%s?%s: %v, %d matches", pr.typ, pr.params.Encode(), err, len(pg.Matches))
		}
	}
	reportLatency(b, lat)
}

// reportLatency adds the p50 and p99 of the timed iterations, in ms.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkCreateIndexed and BenchmarkCreateUnindexed: Observation creates
// by 32 concurrent writers into a fresh store, with and without search
// index maintenance (a Service without a registry indexes nothing), with
// the runtime settings serve uses (app.TuneRuntime). The target: indexed
// >= 60% of the unindexed writes/s. Fewer than ~15,000 iterations measure
// few or no journal folds (one per ~1,800 creates once the journal is
// full). HEALTHHUB_BENCH_CREATE_DIR names a data directory to write into
// instead: a scratch copy of the search data set (HEALTHHUB_BENCH_DIR), to
// measure writes into indexes of 1,000,000 Observations. It gains the
// benchmark's creates, unindexed ones too: never point it at the cache.
func BenchmarkCreateIndexed(b *testing.B) { benchCreate(b, true) }

func BenchmarkCreateUnindexed(b *testing.B) { benchCreate(b, false) }

// benchWriteBodies are the benchWriteTemplate Observation bodies the write
// benchmarks cycle through, at indexes the search data set does not use.
func benchWriteBodies(b *testing.B) [][]byte {
	ts, err := loadBenchTemplates()
	if err != nil {
		b.Fatal(err)
	}
	const patients = 100000
	bodies := make([][]byte, benchWriteTemplate)
	pat := func(i int) benchPatient { return benchPatientAt(i) }
	for i := range bodies {
		bodies[i] = ts.observationBody(1<<30+i, patients, pat)
	}
	return bodies
}

func benchCreate(b *testing.B, indexed bool) {
	defer app.TuneRuntime()()
	bodies := benchWriteBodies(b)
	dir := os.Getenv("HEALTHHUB_BENCH_CREATE_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else if _, err := os.Stat(filepath.Join(dir, "bench-manifest.txt")); err == nil {
		b.Fatalf("HEALTHHUB_BENCH_CREATE_DIR=%s is the search data set's cache: copy its healthhub.db to a scratch directory", dir)
	}
	// The store derives index entries as serve's does (app.OpenStore), also
	// for unindexed writes, which give it none.
	st, err := app.OpenStore(dir, store.Options{InitialMmapSize: app.ServeMmapSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	var reg *search.Registry
	if indexed {
		if reg, err = search.Load(); err != nil {
			b.Fatal(err)
		}
	}
	v := validate.New()
	if err := v.Validate("Observation", bodies[0]); err != nil { // compile the schema now
		b.Fatal(err)
	}
	svc := interaction.New(st, v, reg)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism((benchWriteWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	before := st.Stats()
	wroteBefore, wroteOK := processWriteBytes()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := svc.Create(ctx, auth.Local(), "Observation", bodies[int(i)%len(bodies)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/write")
	after := st.Stats()
	b.ReportMetric(float64(after.PageWrites-before.PageWrites)/float64(b.N), "pagewrites/write")
	b.ReportMetric(float64(b.N)/float64(after.Commits-before.Commits), "writes/commit")
	if wrote, ok := processWriteBytes(); ok && wroteOK {
		b.ReportMetric(float64(wrote-wroteBefore)/1e3/float64(b.N), "kB-written/write")
	}
	if folds := after.JournalFolds - before.JournalFolds; folds > 0 {
		b.ReportMetric(float64((after.JournalFoldTime-before.JournalFoldTime).Milliseconds())/float64(folds), "ms/fold")
		b.ReportMetric(float64(after.JournalFoldsPlanned-before.JournalFoldsPlanned)/float64(folds), "planned/fold")
	}
}

// processWriteBytes is what this process has passed to write calls so
// far (wchar of /proc/self/io: Linux only), for the bytes a write costs
// the disk, pages and journal included: bbolt writes with pwrite, and the
// benchmark logs nothing while it runs. Not write_bytes, which counts the
// page cache the process dirties: into a scratch copy made with cp
// (HEALTHHUB_BENCH_CREATE_DIR) it counted several times what reached the
// disk (45 kB an unindexed create, against ~10 kB on a fresh store, while
// /proc/diskstats agreed with wchar), likely as whole large folios.
func processWriteBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// BenchmarkUpdateIndexed: 32 writers update 4,096 Observations in turn,
// each update giving one a new body (another Observation's values), on a
// fresh store, with serve's runtime settings. An update removes the index
// entries of the version it replaces: the store derives them from that
// version (store.Indexer).
func BenchmarkUpdateIndexed(b *testing.B) {
	defer app.TuneRuntime()()
	bodies := benchWriteBodies(b)
	st, err := app.OpenStore(b.TempDir(), store.Options{InitialMmapSize: app.ServeMmapSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	reg, err := search.Load()
	if err != nil {
		b.Fatal(err)
	}
	svc := interaction.New(st, validate.New(), reg)
	ctx := context.Background()
	// Each Observation alternates between two bodies: its own and another's.
	n := len(bodies)
	ids, versions := make([]string, n), [2][][]byte{make([][]byte, n), make([][]byte, n)}
	for j := range ids {
		ids[j] = fmt.Sprintf("upd%05d", j)
		versions[0][j] = withID(bodies[j], ids[j])
		versions[1][j] = withID(bodies[(j*7+1)%n], ids[j])
		if _, _, err := svc.Update(ctx, auth.Local(), "Observation", ids[j], versions[0][j], 0); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism((benchWriteWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			j := i % n
			if _, _, err := svc.Update(ctx, auth.Local(), "Observation", ids[j], versions[(i/n+1)%2][j], 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/write")
}

// withID is body, an Observation, with id instead of its own.
func withID(body []byte, id string) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		panic(err)
	}
	m["id"] = json.RawMessage(strconv.Quote(id))
	out, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return out
}
