package interaction

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// parseBody checks that body is a resource of type typ and valid; it returns
// the parsed top level, ready for stamping. Malformed JSON and a wrong
// resourceType are 400 (Invalid); a well-formed resource that breaks the R4
// rules is 422 (Unprocessable).
func (s *Service) parseBody(typ string, body []byte) (*fhir.Object, error) {
	obj, err := parseResource(typ, body)
	if err != nil {
		return nil, err
	}
	if err := s.validateBody(typ, body); err != nil {
		return nil, err
	}
	return obj, nil
}

// parseCreateBody is parseBody for a create, whose body's id the server
// ignores (R4 http.html#create: "If an id is provided, the server SHALL
// ignore it"): an id that would not be valid is no reason to refuse it.
// The id is left out of the object returned.
func (s *Service) parseCreateBody(typ string, body []byte) (*fhir.Object, error) {
	obj, err := parseResource(typ, body)
	if err != nil {
		return nil, err
	}
	if _, ok := obj.Get("id"); ok {
		obj.Delete("id")
		body = obj.Bytes()
	}
	if err := s.validateBody(typ, body); err != nil {
		return nil, err
	}
	return obj, nil
}

// parseResource is parseBody without the R4 validation, for bodies
// validated already (the entries of a transaction Bundle).
func parseResource(typ string, body []byte) (*fhir.Object, error) {
	obj, err := parseJSON(body)
	if err != nil {
		return nil, err
	}
	rt, ok := obj.String("resourceType")
	switch {
	case !ok:
		return nil, fhir.Errorf(fhir.Invalid, "required", "the body has no resourceType: expected %q", typ).At("resourceType")
	case rt != typ:
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "the body is a %s, but the URL says %s", rt, typ).At("resourceType")
	}
	return obj, nil
}

// parseJSON reads the top level of a body: 400 when it is not UTF-8 or
// not a JSON object. (An imported line is parsed so before its type is
// known.)
func parseJSON(body []byte) (*fhir.Object, error) {
	if !utf8.Valid(body) { // RFC 8259 8.1: JSON is UTF-8; ParseObject does not check
		return nil, fhir.Errorf(fhir.Invalid, "structure", "malformed JSON: the body is not valid UTF-8")
	}
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "%s", err.Error())
	}
	return obj, nil
}

// validateBody checks a resource of type typ against the R4 rules:
// breaking them is 422 (Unprocessable); JSON malformed below the top level
// (which parseJSON reads) stays 400, as at the top.
func (s *Service) validateBody(typ string, body []byte) error {
	if err := s.validator.Validate(typ, body); err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) && fe.Kind == fhir.Invalid && !errors.Is(err, validate.ErrMalformed) {
			fe.Kind = fhir.Unprocessable
		}
		return err
	}
	return nil
}

// Create stores a new resource under a server-assigned id; an id in the
// body is ignored, as R4 says.
func (s *Service) Create(ctx context.Context, p auth.Principal, typ string, body []byte) (*fhir.Resource, error) {
	if err := CheckType(typ); err != nil {
		return nil, err
	}
	obj, err := s.parseCreateBody(typ, body)
	if err != nil {
		return nil, err
	}
	id := s.newID() // made before the transaction: Batch may run it twice
	obj.Set("id", quoteJSON(id))
	entries, err := s.indexEntries(typ, obj)
	if err != nil {
		return nil, err
	}
	var r *fhir.Resource
	err = s.store.Update(ctx, func(tx store.Tx) (err error) {
		r, err = s.putIndexed(tx, p, typ, id, obj, entries, true)
		return err
	})
	return r, err
}

// Precondition is an If-Match condition: the version the client last saw.
// Zero means none.
type Precondition uint64

func (p Precondition) check(cur *fhir.Resource, typ, id string) error {
	if p == 0 {
		return nil
	}
	if cur == nil {
		return fhir.Errorf(fhir.PreconditionFailed, "conflict", "If-Match: %s/%s does not exist", typ, id)
	}
	if uint64(p) != cur.VersionID {
		return fhir.Errorf(fhir.PreconditionFailed, "conflict", "If-Match: version %d was asked for, the current version of %s/%s is %d", uint64(p), typ, id, cur.VersionID)
	}
	return nil
}

// Update stores a new version of Type/id, or creates it with that id
// (update-as-create). created tells which.
func (s *Service) Update(ctx context.Context, p auth.Principal, typ, id string, body []byte, ifMatch Precondition) (r *fhir.Resource, created bool, err error) {
	return s.update(ctx, p, typ, id, body, ifMatch, false)
}

// UpdateIfAbsent is Update under If-None-Match: * (RFC 9110 13.1.2): it
// fails with PreconditionFailed when Type/id exists (a deleted resource
// does not), so that a create with the client's id never overwrites.
func (s *Service) UpdateIfAbsent(ctx context.Context, p auth.Principal, typ, id string, body []byte, ifMatch Precondition) (r *fhir.Resource, created bool, err error) {
	return s.update(ctx, p, typ, id, body, ifMatch, true)
}

func (s *Service) update(ctx context.Context, p auth.Principal, typ, id string, body []byte, ifMatch Precondition, absent bool) (r *fhir.Resource, created bool, err error) {
	if err := checkTypeID(typ, id); err != nil {
		return nil, false, err
	}
	obj, err := s.parseBody(typ, body)
	if err != nil {
		return nil, false, err
	}
	bodyID, ok := obj.String("id")
	switch {
	case !ok:
		return nil, false, fhir.Errorf(fhir.Invalid, "required", "an update must carry the id %q in the body", id).At(typ + ".id")
	case bodyID != id:
		return nil, false, fhir.Errorf(fhir.Invalid, "invalid", "the body's id %q differs from the id %q in the URL", bodyID, id).At(typ + ".id")
	}
	entries, err := s.indexEntries(typ, obj)
	if err != nil {
		return nil, false, err
	}
	s.store.PrepareReplace(ctx, typ, id)
	err = s.store.Update(ctx, func(tx store.Tx) error {
		r, created = nil, false // Batch may run this again
		cur, err := tx.Current(typ, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if cur != nil {
			// Before the preconditions: their 412 would tell a confined
			// caller that a resource outside its compartment exists, and
			// its version.
			if err := s.mayWrite(tx, p, typ, id, nil); err != nil {
				return err
			}
		}
		if err := ifMatch.check(cur, typ, id); err != nil {
			return err
		}
		created = cur == nil || cur.Deleted
		if absent && !created {
			return fhir.Errorf(fhir.PreconditionFailed, "conflict", "If-None-Match: *: %s/%s exists (version %d)", typ, id, cur.VersionID)
		}
		r, err = s.putIndexed(tx, p, typ, id, obj, entries, false)
		return err
	})
	return r, created, err
}

// Delete marks Type/id deleted. Deleting what is absent or already deleted
// is not an error (R4): r is nil then.
func (s *Service) Delete(ctx context.Context, p auth.Principal, typ, id string, ifMatch Precondition) (r *fhir.Resource, err error) {
	if err := checkTypeID(typ, id); err != nil {
		return nil, err
	}
	s.store.PrepareReplace(ctx, typ, id)
	err = s.store.Update(ctx, func(tx store.Tx) error {
		r = nil
		cur, err := tx.Current(typ, id)
		if errors.Is(err, store.ErrNotFound) {
			return ifMatch.check(nil, typ, id)
		}
		if err != nil {
			return err
		}
		if cur.Deleted && ifMatch == 0 {
			return nil
		}
		// Before If-Match: its 412 would tell a confined caller the
		// version of a resource outside its compartment.
		if err := s.mayWrite(tx, p, typ, id, nil); err != nil {
			return err
		}
		if err := ifMatch.check(cur, typ, id); err != nil {
			return err
		}
		if cur.Deleted {
			return nil
		}
		if r, err = tx.Delete(typ, id); err != nil {
			return err
		}
		return tx.SetIndex(typ, id, nil) // a deleted resource matches no search
	})
	return r, err
}

func quoteJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
