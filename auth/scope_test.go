package auth_test

import (
	"errors"
	"strings"
	"testing"

	"healthhub/auth"
)

const (
	c = auth.PermCreate
	r = auth.PermRead
	u = auth.PermUpdate
	d = auth.PermDelete
	s = auth.PermSearch
)

func TestParseScope(t *testing.T) {
	cases := []struct {
		in    string
		ctx   string
		typ   string
		perms auth.Perm
		v1    bool
		query string
	}{
		// v1
		{"system/Patient.read", "system", "Patient", r | s, true, ""},
		{"system/*.write", "system", "*", c | u | d, true, ""},
		{"system/Observation.*", "system", "Observation", c | r | u | d | s, true, ""},
		{"system/*.*", "system", "*", c | r | u | d | s, true, ""},
		{"patient/Observation.read", "patient", "Observation", r | s, true, ""},
		{"user/Appointment.write", "user", "Appointment", c | u | d, true, ""},
		// v2
		{"system/Patient.rs", "system", "Patient", r | s, false, ""},
		{"system/Observation.cruds", "system", "Observation", c | r | u | d | s, false, ""},
		{"system/*.r", "system", "*", r, false, ""},
		{"system/Encounter.c", "system", "Encounter", c, false, ""},
		{"system/Encounter.ud", "system", "Encounter", u | d, false, ""},
		{"system/Encounter.cd", "system", "Encounter", c | d, false, ""},
		{"patient/Observation.rs", "patient", "Observation", r | s, false, ""},
		{"patient/Observation.rs?category=laboratory", "patient", "Observation", r | s, false, "category=laboratory"},
	}
	for _, tc := range cases {
		sc, err := auth.ParseScope(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if sc.Context != tc.ctx || sc.Type != tc.typ || sc.Perms != tc.perms || sc.V1 != tc.v1 || sc.Query != tc.query {
			t.Errorf("%s: got %+v", tc.in, sc)
		}
		if got := sc.String(); got != tc.in {
			t.Errorf("%s: String() = %s", tc.in, got)
		}
	}
}

func TestParseScopeRejects(t *testing.T) {
	for _, in := range []string{
		"", "system", "system/", "system/Patient", "system/Patient.", "system/.rs",
		"system/Patient.dus",  // out of order
		"system/Patient.rr",   // repeated
		"system/Patient.x",    // undefined letter
		"system/Patient.Read", // case matters
		"system/patient.rs",   // type names start upper-case
		"system/Pa-tient.rs",  // not a type name
		"admin/Patient.rs",    // unknown context
		"launch", "openid", "offline_access", "fhirUser",
		"system/Patient.read?x=1", // a query needs v2 permissions
		"system/Patient.rs?",      // empty query
		"system/Patient.rs.rs",
		strings.Repeat("a", 600),
	} {
		if sc, err := auth.ParseScope(in); !errors.Is(err, auth.ErrScope) {
			t.Errorf("%q: got %+v, %v; want ErrScope", in, sc, err)
		}
	}
}

func TestGrant(t *testing.T) {
	cases := []struct {
		name, requested, allowed, want, err string
	}{
		{"same", "system/Patient.rs", "system/Patient.rs", "system/Patient.rs", ""},
		{"v1 asked, v1 answered", "system/Patient.read", "system/*.cruds", "system/Patient.read", ""},
		{"v1 narrowed to v2", "system/Patient.read", "system/Patient.r", "system/Patient.r", ""},
		{"v2 narrowed", "system/Observation.cruds", "system/Observation.rs", "system/Observation.rs", ""},
		{"wildcard asked, types allowed", "system/*.rs", "system/Patient.rs system/Observation.r", "system/Patient.rs system/Observation.r", ""},
		{"wildcard both", "system/*.read", "system/*.*", "system/*.read", ""},
		{"type under wildcard", "system/Encounter.cruds", "system/*.rs", "system/Encounter.rs", ""},
		{"partly allowed", "system/Patient.rs system/Encounter.rs", "system/Patient.rs", "system/Patient.rs", ""},
		{"duplicates once", "system/Patient.rs system/Patient.rs", "system/Patient.rs", "system/Patient.rs", ""},
		{"union of allowances", "system/Patient.cruds", "system/Patient.rs system/*.c", "system/Patient.crs", ""},
		{"nothing allowed", "system/Encounter.rs", "system/Patient.rs", "", "none of the requested"},
		{"write vs read", "system/Patient.write", "system/Patient.read", "", "none of the requested"},
		{"empty", "", "system/*.rs", "", "scope is required"},
		{"patient scope without a patient", "patient/Patient.rs", "system/*.rs patient/*.rs", "", "add patient=<Patient id>"},
		{"user scope", "user/Patient.read", "system/*.rs", "", "only system/ and patient/"},
		{"query constrained", "system/Observation.rs?category=laboratory", "system/*.rs", "", "query-constrained"},
		{"garbage", "system/Patient.xyz", "system/*.rs", "", "invalid scope"},
		{"openid", "openid system/Patient.rs", "system/*.rs", "", "invalid scope"},
		{"allowed patient scope never grants system", "system/Patient.rs", "patient/Patient.rs", "", "none of the requested"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.Grant(tc.requested, strings.Fields(tc.allowed), false)
			if tc.err != "" {
				var se *auth.ScopeError
				if !errors.As(err, &se) || !strings.Contains(se.Reason, tc.err) {
					t.Fatalf("%q against %q: got %v, %v; want an error with %q", tc.requested, tc.allowed, got, err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Fatalf("%q against %q: got %v, %v; want %s", tc.requested, tc.allowed, got, err, tc.want)
			}
		})
	}
}

func TestGrantPatientScopes(t *testing.T) {
	cases := []struct {
		name, requested, allowed, want, err string
	}{
		{"v2 type", "patient/Observation.rs", "patient/*.rs", "patient/Observation.rs", ""},
		{"v1 type", "patient/Observation.read", "patient/Observation.cruds", "patient/Observation.read", ""},
		{"wildcard asked, types allowed", "patient/*.cruds", "patient/Patient.rs patient/Observation.cr", "patient/Patient.rs patient/Observation.cr", ""},
		{"with system", "system/Observation.rs patient/Patient.rs", "system/Observation.rs patient/*.rs", "system/Observation.rs patient/Patient.rs", ""},
		{"system allowance never grants patient", "patient/Observation.rs", "system/*.cruds", "", "none of the requested"},
		{"user still refused", "user/Observation.rs", "patient/*.rs", "", "user/ scopes"},
		{"query still refused", "patient/Observation.rs?category=laboratory", "patient/*.rs", "", "query-constrained"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.Grant(tc.requested, strings.Fields(tc.allowed), true)
			if tc.err != "" {
				var se *auth.ScopeError
				if !errors.As(err, &se) || !strings.Contains(se.Reason, tc.err) {
					t.Fatalf("%q against %q: got %v, %v; want an error with %q", tc.requested, tc.allowed, got, err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Fatalf("%q against %q: got %v, %v; want %s", tc.requested, tc.allowed, got, err, tc.want)
			}
		})
	}
}

func TestConfined(t *testing.T) {
	p := auth.Principal{Patient: "p1", Scopes: []string{"system/Observation.rs", "patient/Patient.rs", "patient/Encounter.crs", "system/Encounter.rs", "patient/Condition.r", "system/Condition.s"}}
	cases := []struct {
		typ             string
		allows, confine bool
	}{
		{"Observation", true, false}, // system only
		{"Patient", true, true},      // patient only
		{"Encounter", true, true},    // patient grants c beyond system's rs
		{"Condition", true, true},    // r only by the patient scope: confined for s too, never widened
		{"Procedure", false, false},
	}
	for _, tc := range cases {
		if got := p.Allows(tc.typ, r); got != tc.allows {
			t.Errorf("Allows(%s, r) = %v, want %v", tc.typ, got, tc.allows)
		}
		if got := p.Confined(tc.typ); got != tc.confine {
			t.Errorf("Confined(%s) = %v, want %v", tc.typ, got, tc.confine)
		}
	}
	if !p.ConfinedAny() {
		t.Error("ConfinedAny is false")
	}
	wide := auth.Principal{Patient: "p1", Scopes: []string{"system/*.rs", "patient/*.rs"}}
	if wide.Confined("Observation") || wide.ConfinedAny() {
		t.Error("system/*.rs does not win over patient/*.rs")
	}
	// Without a patient, patient/ scopes grant nothing: nothing to confine to.
	none := auth.Principal{Scopes: []string{"patient/*.rs"}}
	if none.Allows("Patient", r) || none.Confined("Patient") {
		t.Error("patient/ scopes count without a patient")
	}
	if auth.Local().Confined("Patient") || auth.Local().ConfinedAny() {
		t.Error("the local principal is confined")
	}
}

func TestAllows(t *testing.T) {
	p := auth.Principal{Scopes: []string{"system/Patient.read", "system/Observation.cruds", "system/*.c", "patient/Encounter.rs", "system/Appointment.rs?status=booked"}}
	cases := []struct {
		typ  string
		perm auth.Perm
		want bool
	}{
		{"Patient", r, true},
		{"Patient", s, true},
		{"Patient", u, false},
		{"Patient", c, true}, // system/*.c
		{"Observation", d, true},
		{"Observation", r | s, true},
		{"Encounter", r, false},   // patient scopes never count
		{"Appointment", r, false}, // query-constrained scopes never count
		{"Encounter", c, true},
		{"*", s, false}, // system search needs a wildcard
		{"*", c, true},
		{"Patient", 0, false},
	}
	for _, tc := range cases {
		if got := p.Allows(tc.typ, tc.perm); got != tc.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", tc.typ, tc.perm, got, tc.want)
		}
	}
	if !auth.Local().Allows("Anything", d) {
		t.Error("the local principal is refused")
	}
	if (auth.Principal{}).Allows("Patient", r) {
		t.Error("a principal without scopes is allowed")
	}
}

func TestNeeded(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		perm auth.Perm
		want string
	}{
		{"Patient", r, "system/Patient.r (v1: system/Patient.read)"},
		{"Observation", c, "system/Observation.c (v1: system/Observation.write)"},
		{"*", s, "system/*.s (v1: system/*.read)"},
	} {
		if got := auth.Needed(tc.typ, tc.perm); got != tc.want {
			t.Errorf("Needed(%s, %s) = %s, want %s", tc.typ, tc.perm, got, tc.want)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"system/Patient.read", "system/*.cruds", "patient/Observation.rs?category=x", "user/*.*", "system/Patient.dus", "", "/.?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sc, err := auth.ParseScope(in)
		if err != nil {
			return
		}
		// What parses prints back to something that parses the same.
		again, err := auth.ParseScope(sc.String())
		if err != nil || again != sc {
			t.Fatalf("%q -> %q -> %+v, %v", in, sc.String(), again, err)
		}
		_, _ = auth.Grant(in, []string{in, "system/*.cruds"}, true)
	})
}

func TestPermFor(t *testing.T) {
	for _, tc := range []struct {
		code     string
		perm     auth.Perm
		allTypes bool
		ok       bool
	}{
		{"read", r, false, true}, {"vread", r, false, true}, {"history-instance", r, false, true},
		{"search-type", s, false, true}, {"history-type", s, false, true},
		{"search-system", s, true, true}, {"history-system", s, true, true},
		{"create", c, false, true}, {"update", u, false, true}, {"patch", u, false, true}, {"delete", d, false, true},
		{"transaction", 0, false, true}, {"batch", 0, false, true},
		{"operation", 0, false, false}, {"", 0, false, false},
	} {
		perm, all, ok := auth.PermFor(tc.code)
		if perm != tc.perm || all != tc.allTypes || ok != tc.ok {
			t.Errorf("PermFor(%q) = %s %v %v, want %s %v %v", tc.code, perm, all, ok, tc.perm, tc.allTypes, tc.ok)
		}
	}
}
