package interaction_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

// TestKeysetPaging: a one-range search pages by position in the index.
// Following the cursors visits every resource that matched throughout
// exactly once while others are created, updated and deleted between the
// pages; a cursor that is malformed or belongs to another query is 410.
func TestKeysetPaging(t *testing.T) {
	s := newService(t)
	ctx, p := context.Background(), auth.Local()
	obs := func(code string) []byte {
		return []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]}}`)
	}
	create := func(code string) string {
		r, err := s.Create(ctx, p, "Observation", obs(code))
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	var matching []string
	for i := 0; i < 25; i++ {
		matching = append(matching, create("1234-5"))
		create("9999-9")
	}
	query := url.Values{"code": {"http://loinc.org|1234-5"}, "_count": {"4"}}
	search := func(cursor string) *interaction.SearchPage {
		t.Helper()
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		if cursor != "" {
			q.Set("_cursor", cursor)
		}
		page, err := s.Search(ctx, p, "Observation", q, true)
		if err != nil {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
		return page
	}

	first := search("")
	if first.Snapshot != "" || !strings.HasPrefix(first.NextCursor, "k") || first.Total != -1 || len(first.Matches) != 4 {
		t.Fatalf("first page: snapshot %q, next %q, total %d, %d matches", first.Snapshot, first.NextCursor, first.Total, len(first.Matches))
	}
	seen := map[string]int{}
	for _, r := range first.Matches {
		seen[r.ID]++
	}
	// Between the pages: three new matches, one unseen match deleted, one
	// seen match updated with the same code.
	var added []string
	for i := 0; i < 3; i++ {
		added = append(added, create("1234-5"))
	}
	deleted := matching[len(matching)-1]
	if _, err := s.Delete(ctx, p, "Observation", deleted, 0); err != nil {
		t.Fatal(err)
	}
	updated := first.Matches[0]
	body := strings.Replace(string(obs("1234-5")), `"status":"final"`, `"id":"`+updated.ID+`","status":"amended"`, 1)
	if _, _, err := s.Update(ctx, p, "Observation", updated.ID, []byte(body), 0); err != nil {
		t.Fatal(err)
	}
	for cursor := first.NextCursor; cursor != ""; {
		page := search(cursor)
		for _, r := range page.Matches {
			seen[r.ID]++
		}
		if page.Next != (page.NextCursor != "") {
			t.Fatalf("Next %v with cursor %q", page.Next, page.NextCursor)
		}
		cursor = page.NextCursor
	}
	for _, id := range append(matching[:len(matching)-1], added...) {
		if seen[id] != 1 {
			t.Errorf("%s served %d times, want once", id, seen[id])
		}
	}
	if seen[deleted] != 0 {
		t.Errorf("the deleted %s was served", deleted)
	}

	// A result that fits one page has its total, as before.
	query = url.Values{"code": {"http://loinc.org|9999-9"}, "_count": {"100"}}
	if page := search(""); page.Total != 25 || page.NextCursor != "" || page.Next {
		t.Errorf("one page: total %d, next %q", page.Total, page.NextCursor)
	}

	other := first.NextCursor                                             // a position within 1234-5's range
	for _, c := range []string{"k", "k!!", "kAAAA", other + "x", "kAQ"} { // empty, not base64, no id, bad length, a key but no id
		query = url.Values{"code": {"http://loinc.org|1234-5"}, "_count": {"4"}}
		checkGone(t, s, query, c)
	}
	query = url.Values{"code": {"http://loinc.org|9999-9"}}
	checkGone(t, s, query, other) // another query's cursor
}

func checkGone(t *testing.T, s *interaction.Service, q url.Values, cursor string) {
	t.Helper()
	q.Set("_cursor", cursor)
	_, err := s.Search(context.Background(), auth.Local(), "Observation", q, true)
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Gone {
		t.Errorf("cursor %q on %v: %v, want Gone", cursor, q, fmt.Sprint(err))
	}
}

// TestKeysetServesAResourceOnce: a resource with several values inside one
// range (a string prefix, a code system) is one match, served once and
// counted once, however the pages fall.
func TestKeysetServesAResourceOnce(t *testing.T) {
	s := newService(t)
	p := auth.Local()
	for _, tt := range []struct {
		typ, body string
		q         url.Values
	}{
		{"Patient", `{"resourceType":"Patient","name":[{"family":"Johnson","given":["John"]}]}`, url.Values{"name": {"john"}}},
		{"Observation", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"},{"system":"http://loinc.org","code":"8889-8"}]}}`,
			url.Values{"code": {"http://loinc.org|"}}},
	} {
		r, err := s.Create(ctx, p, tt.typ, []byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		for _, count := range []string{"", "1"} {
			q := url.Values{}
			for k, v := range tt.q {
				q[k] = v
			}
			if count != "" {
				q.Set("_count", count)
			}
			served, total := 0, -1
			for cursor, first := "", true; first || cursor != ""; first = false {
				if cursor != "" {
					q.Set("_cursor", cursor)
				}
				page, err := s.Search(ctx, p, tt.typ, q, true)
				if err != nil {
					t.Fatal(err)
				}
				if first {
					total = page.Total
				}
				for _, m := range page.Matches {
					if m.ID == r.ID {
						served++
					}
				}
				cursor = page.NextCursor
			}
			if served != 1 || (total != 1 && total != -1) {
				t.Errorf("%s?%s: the one match was served %d times, total %d", tt.typ, tt.q.Encode()+"&_count="+count, served, total)
			}
		}
	}
}

// TestKeysetReferenceWithBase: with the server's base known, a reference
// search also looks for the absolute form of the reference; while no
// stored resource uses that form, the search still pages by keyset, and
// once one does, it pages by snapshot and finds both.
func TestKeysetReferenceWithBase(t *testing.T) {
	s := newService(t)
	const base = "http://hie.example/fhir"
	s.SetBaseURL(base)
	p := auth.Local()
	createObservationAbout(t, s, "Patient/x")
	createObservationAbout(t, s, "Patient/x")
	q := url.Values{"subject": {"Patient/x"}, "_count": {"1"}}
	page, err := s.Search(ctx, p, "Observation", q, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(page.NextCursor, "k") {
		t.Errorf("subject=Patient/x with no absolute form stored: cursor %q, want a keyset cursor", page.NextCursor)
	}
	createObservationAbout(t, s, base+"/Patient/x")
	q.Set("_count", "10")
	page, err = s.Search(ctx, p, "Observation", q, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Matches) != 3 {
		t.Errorf("subject=Patient/x: %d matches, want 3 (one stored as %s/Patient/x)", len(page.Matches), base)
	}
}

// TestKeysetCursorSurvivesOtherReferenceForm: a later page keeps to the
// value its first page chose, though the other form of it appeared since.
func TestKeysetCursorSurvivesOtherReferenceForm(t *testing.T) {
	s := newService(t)
	const base = "http://hie.example/fhir"
	s.SetBaseURL(base)
	p := auth.Local()
	createObservationAbout(t, s, "Patient/x")
	createObservationAbout(t, s, "Patient/x")
	q := url.Values{"subject": {"Patient/x"}, "_count": {"1"}}
	page, err := s.Search(ctx, p, "Observation", q, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(page.NextCursor, "k") {
		t.Fatalf("want a keyset cursor, got %q", page.NextCursor)
	}
	createObservationAbout(t, s, base+"/Patient/x") // another client writes the absolute form meanwhile
	q.Set("_cursor", page.NextCursor)
	if _, err := s.Search(ctx, p, "Observation", q, true); err != nil {
		t.Errorf("following next after a match was created with the absolute reference form: %v", err)
	}
}

// createObservationAbout stores an Observation whose subject is ref.
func createObservationAbout(t *testing.T, s *interaction.Service, ref string) {
	t.Helper()
	if _, err := s.Create(ctx, auth.Local(), "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+ref+`"}}`)); err != nil {
		t.Fatal(err)
	}
}
