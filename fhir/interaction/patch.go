package interaction

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"healthhub/auth"
	"healthhub/fhir"
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
	p, err := jsonpatch.DecodePatch(body)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "not a JSON Patch document (RFC 6902: an array of operations add, remove, replace, move, copy, test): %v", err)
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
	out, err := o.patch.ApplyWithOptions(cur.JSON, patchOptions())
	if err != nil {
		if errors.Is(err, jsonpatch.ErrTestFailed) {
			return nil, fhir.Errorf(fhir.Unprocessable, "processing", "a test operation of the patch failed on %s (version %d): %v", cur.Path(), cur.VersionID, err)
		}
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
