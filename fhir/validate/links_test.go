package validate_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"healthhub/fhir/validate"
)

// TestLinks: the walk reports url elements and narrative divs, wherever
// they sit (datatypes, extensions, primitive extensions, contained
// resources, Bundle entries), and no other string that looks the same: an
// Identifier.value, a Reference.reference, an id, a code, nor an element of
// type uri, oid, uuid or canonical (mostly identities: systems,
// Extension.url, a fullUrl, a ConceptMap's source, implicitRules).
func TestLinks(t *testing.T) {
	cases := []struct {
		name, typ, body string
		want            []string // kind:value, sorted
	}{
		{"DocumentReference", "DocumentReference", `{"resourceType":"DocumentReference","status":"current",
			"masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"},
			"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a\">doc</a></div>"},
			"subject":{"reference":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000b"},
			"content":[{"attachment":{"contentType":"text/plain","url":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"}}]}`,
			[]string{"narrative:<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a\">doc</a></div>",
				"url:urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"}},
		{"extensions and contained", "Patient", `{"resourceType":"Patient","id":"p1",
			"extension":[{"url":"http://example.org/ext","valueUri":"urn:oid:1.2.3"}],
			"_birthDate":{"extension":[{"url":"http://example.org/e2","valueCanonical":"http://example.org/c"}]},
			"birthDate":"1970-01-01",
			"contained":[{"id":"o1","resourceType":"Organization","name":"Acme","telecom":[{"system":"url","value":"urn:uuid:x"}],"extension":[{"url":"http://example.org/e3","valueUrl":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000c"}]}],
			"managingOrganization":{"reference":"#o1"}}`,
			[]string{"url:urn:uuid:0b1e2f3a-0000-4000-8000-00000000000c"}},
		{"Bundle entries", "Bundle", `{"resourceType":"Bundle","type":"collection","entry":[
			{"fullUrl":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000d","resource":{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]}}},
			{"resource":{"resourceType":"ValueSet","status":"active","url":"http://example.org/vs","compose":{"include":[{"system":"http://example.org/cs"}]}}},
			{"resource":{"resourceType":"Provenance","recorded":"2024-01-01T00:00:00Z","target":[{"reference":"Patient/p"}],"agent":[{"who":{"reference":"Patient/p"}}],"policy":["urn:uuid:0b1e2f3a-0000-4000-8000-00000000000e"]}}]}`,
			nil},
	}
	v := validate.New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.body)
			if err := v.Validate(c.typ, body); err != nil {
				t.Fatalf("the fixture is not valid: %v", err)
			}
			var got []string
			err := v.Links(c.typ, body, func(start, end int, kind validate.LinkKind) {
				var s string
				if err := json.Unmarshal(body[start:end], &s); err != nil {
					t.Fatalf("range [%d, %d) is not a JSON string: %q", start, end, body[start:end])
				}
				prefix := map[validate.LinkKind]string{validate.LinkURL: "url:", validate.LinkNarrative: "narrative:"}[kind]
				got = append(got, prefix+s)
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("links:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}
