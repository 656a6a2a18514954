package interaction

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/validate"
)

// Patch applies a JSON Patch (RFC 6902) to Type/id, or, when id is "", to
// the one resource criteria select (conditional patch). The result is
// validated as an update would be, may not change id or resourceType, and
// becomes the next version; the stored JSON is the patched JSON, never a
// round trip through typed models.
func (s *Service) Patch(ctx context.Context, p auth.Principal, typ, id string, criteria url.Values, patch []byte, ifMatch Precondition) (Result, error) {
	o := &op{index: -1, method: methodPatch, url: typ, typ: typ, id: id, ifMatch: ifMatch}
	var err error
	if id == "" {
		if o.criteria, err = s.criteria(typ, criteria, "the conditional patch"); err != nil {
			return Result{}, err
		}
	} else if err := checkTypeID(typ, id); err != nil {
		return Result{}, err
	}
	if o.patch, err = decodePatch(patch); err != nil {
		return Result{}, err
	}
	o.refs = patchReferences(patch)
	return s.runOne(ctx, p, o, false)
}

// patchReferences lists what a transaction may have to resolve in a JSON
// Patch (a valid one): Reference.reference members in its values, a value
// set at a path ending in /reference, and temporary links anywhere.
func patchReferences(patch []byte) []string {
	refs := append(references(patch), temporaryStrings(patch)...)
	var ops []struct {
		Op, Path string
		Value    json.RawMessage
	}
	if json.Unmarshal(patch, &ops) != nil {
		return refs
	}
	for _, op := range ops {
		var s string
		if (op.Op == "add" || op.Op == "replace") && strings.HasSuffix(op.Path, "/reference") && json.Unmarshal(op.Value, &s) == nil && resolvable(s) {
			refs = append(refs, s)
		}
	}
	return refs
}

// decodePatch reads a JSON Patch document: malformed JSON, an unknown op
// or an op without its members is 400.
func decodePatch(body []byte) (jsonpatch.Patch, error) {
	if !utf8.Valid(body) {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "malformed JSON Patch: the body is not valid UTF-8")
	}
	// As strict as a resource body: the patch library keeps the last of
	// two members of one name ({"op":"add","op":"remove",...}), another
	// reader the first.
	if err := validate.WellFormed(body); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "malformed JSON Patch: %v", err)
	}
	p, err := jsonpatch.DecodePatch(body)
	if err == nil && !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("[")) {
		err = fmt.Errorf("the body is not an array") // null decodes as no operations
	}
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "not a JSON Patch document (RFC 6902: an array of operations add, remove, replace, move, copy, test): %v", err)
	}
	// What the library lets through: a path that is not a JSON Pointer
	// (RFC 6901: "" or starting with "/"), a test without its value
	// (RFC 6902 4.6: "MUST contain a "value" member"; null is a value,
	// absence is not).
	for i, op := range p {
		for _, member := range []string{"path", "from"} {
			if raw, ok := op[member]; ok && raw != nil {
				var ptr string
				if json.Unmarshal(*raw, &ptr) == nil && ptr != "" && ptr[0] != '/' {
					return nil, fhir.Errorf(fhir.Invalid, "structure", "operation %d: %s %q is not a JSON Pointer (RFC 6901: it starts with /)", i, member, ptr)
				}
			}
		}
		if _, ok := op["value"]; op.Kind() == "test" && !ok {
			return nil, fhir.Errorf(fhir.Invalid, "structure", "operation %d: a test operation needs a value (RFC 6902 4.6)", i)
		}
	}
	return p, nil
}

// patchOptions: RFC 6902 as written (no negative array indices), growth
// by copy bounded, and "<" kept as it is (narrative XHTML), not escaped.
func patchOptions() *jsonpatch.ApplyOptions {
	o := jsonpatch.NewApplyOptions()
	o.SupportNegativeIndices = false
	o.AccumulatedCopySizeLimit = 1 << 20
	o.EscapeHTML = false
	return o
}

// applyPatch applies o's patch to cur and checks the result as an update
// body. A patch that does not apply to this version (a path that is not
// there, a failed test op) is 422: the request is well formed, but cannot
// be processed against the resource as it is (RFC 5789 2.2 leaves 409 or
// 422 to the server; 412 stays reserved for If-Match).
func (s *Service) applyPatch(o *op, cur *fhir.Resource) (*fhir.Object, error) {
	out, err := applyOps(o.patch, cur.JSON)
	if err != nil {
		return nil, fhir.Errorf(fhir.Unprocessable, "processing", "the patch does not apply to %s (version %d): %v", cur.Path(), cur.VersionID, err)
	}
	obj, err := fhir.ParseObject(out)
	if err != nil {
		return nil, fhir.Errorf(fhir.Unprocessable, "structure", "the patched %s is not a resource: %v", cur.Path(), err)
	}
	if rt, _ := obj.String("resourceType"); rt != o.typ {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "a patch may not change resourceType (%s to %q)", o.typ, rt).At("resourceType")
	}
	if id, _ := obj.String("id"); id != cur.ID {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "a patch may not change the id (%s to %q)", cur.ID, id).At(o.typ + ".id")
	}
	if err := s.validateBody(o.typ, out); err != nil {
		return nil, err
	}
	return obj, nil
}

// maxPatchGrowth bounds what copy and add operations may add to a
// resource, whatever the number of operations.
const maxPatchGrowth = 4 << 20

// applyOps applies a patch to doc. Runs of operations other than test go
// to the library; test operations are judged here, as RFC 6902 4.6 says
// and the library does not: a missing member is not null, and numbers are
// equal when their values are ("72.50" and 7.25e1), which matters because
// stored decimals keep the digits they were sent with. Array indexes are
// checked first (RFC 6901 4: no leading zeros, no sign).
func applyOps(patch jsonpatch.Patch, doc []byte) ([]byte, error) {
	limit := len(doc) + maxPatchGrowth
	for i, op := range patch {
		if err := checkIndexTokens(op); err != nil {
			return nil, fmt.Errorf("operation %d: %w", i, err)
		}
	}
	var decoded any // doc, decoded for the test operations since its last change
	for start := 0; start < len(patch); {
		if patch[start].Kind() == "test" {
			if decoded == nil {
				if err := decodeNumbers(doc, &decoded); err != nil {
					return nil, err
				}
			}
			if err := testOp(patch[start], decoded); err != nil {
				return nil, fmt.Errorf("operation %d (test): %w", start, err)
			}
			start++
			continue
		}
		decoded = nil
		end := start
		for end < len(patch) && patch[end].Kind() != "test" {
			end++
		}
		var err error
		if doc, err = patch[start:end].ApplyWithOptions(doc, patchOptions()); err != nil {
			return nil, err
		}
		if len(doc) > limit {
			return nil, fmt.Errorf("the patch grows the resource by more than %d bytes", maxPatchGrowth)
		}
		start = end
	}
	return doc, nil
}

// checkIndexTokens refuses pointer tokens that can only be meant as array
// indexes (FHIR element names are never numbers) but are not written as
// RFC 6901 4 says: "0" or a digit 1-9 and more digits.
func checkIndexTokens(op jsonpatch.Operation) error {
	for _, member := range []string{"path", "from"} {
		raw, ok := op[member]
		if !ok || raw == nil {
			continue
		}
		var ptr string
		if json.Unmarshal(*raw, &ptr) != nil {
			continue
		}
		for _, tok := range strings.Split(ptr, "/")[1:] {
			digits := strings.TrimLeft(tok, "+-")
			if digits == "" || strings.Trim(digits, "0123456789") != "" {
				continue
			}
			if tok != digits || (len(tok) > 1 && tok[0] == '0') {
				return fmt.Errorf("%s %q: %q is not an array index (RFC 6901: no sign, no leading zeros)", member, ptr, tok)
			}
		}
	}
	return nil
}

// testOp judges a test operation against cur, the decoded document.
func testOp(op jsonpatch.Operation, cur any) error {
	path, err := op.Path()
	if err != nil {
		return err
	}
	want := json.RawMessage("null")
	if raw := op["value"]; raw != nil {
		want = *raw
	}
	var w any
	if err := decodeNumbers(want, &w); err != nil {
		return err
	}
	got, ok := pointerGet(cur, path)
	if !ok {
		return fmt.Errorf("%q is not there", path)
	}
	if !fhir.JSONEqual(got, w) {
		return fmt.Errorf("the value at %q is not the one tested", path)
	}
	return nil
}

func decodeNumbers(raw []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return d.Decode(v)
}

// pointerGet is the value RFC 6901 pointer ptr names in v.
func pointerGet(v any, ptr string) (any, bool) {
	if ptr == "" {
		return v, true
	}
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[tok]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(node) || strconv.Itoa(i) != tok {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}
