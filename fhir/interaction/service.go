package interaction

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"healthhub/auth"
	"healthhub/conformance"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// Service carries out interactions against a Store.
type Service struct {
	store     store.Store
	validator *validate.Validator
	registry  *search.Registry
	pages     *pageCache
	newID     func() string
	// linkedPatients returns the Patient ids a reference to Patient/id
	// stands for in search: the master patient index will widen it to every
	// source patient linked to the same person.
	linkedPatients func(tx store.Tx, id string) ([]string, error)
	// baseURL is this server's FHIR base (SetBaseURL): a search value
	// that names a resource by an absolute URL under it means Type/id.
	baseURL string
}

// SetBaseURL tells s its server's FHIR base URL, without a trailing
// slash. Search and conditional criteria then read a reference value
// <base>/Type/id as Type/id; other values (a token system, a uri) stay as
// written.
func (s *Service) SetBaseURL(base string) { s.baseURL = strings.TrimSuffix(base, "/") }

// Paging snapshots: how many searches may be paged at once, how many
// matches they may hold together (~50 bytes each), and for how long.
const (
	maxSnapshots   = 1000
	maxSnapshotIDs = 4_000_000
	snapshotTTL    = 30 * time.Minute
)

// New returns a Service over st.
func New(st store.Store, v *validate.Validator, reg *search.Registry) *Service {
	return &Service{store: st, validator: v, registry: reg, pages: newPageCache(maxSnapshots, maxSnapshotIDs, snapshotTTL), newID: NewID, linkedPatients: onlyThisPatient}
}

// NewID returns a new resource id: a UUID v7 (RFC 9562), 36 characters,
// within the 64 the id syntax allows. Its first 48 bits are the creation
// time in milliseconds, which meta.lastUpdated tells anyway; the other 74
// are random, so ids stay unguessable. Time order is what makes writes
// cheap: an index key is value|id, so the entries of a new resource land
// after the existing ones of the same value, on the same few pages, instead
// of on a random page each (BENCHMARKS.md, index maintenance).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	ms := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CheckType fails with NotFound for a type that is not an R4 resource type.
func CheckType(typ string) error {
	if !conformance.IsResourceType(typ) {
		return fhir.Errorf(fhir.NotFound, "not-supported", "unknown resource type %q", typ)
	}
	return nil
}

func checkID(typ, id string) error {
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.Invalid, "value", "invalid id %q: an id is 1 to 64 of A-Z a-z 0-9 - .", id).At(typ + ".id")
	}
	return nil
}

func checkTypeID(typ, id string) error {
	if err := CheckType(typ); err != nil {
		return err
	}
	return checkID(typ, id)
}

func notFound(typ, id string) error {
	return fhir.Errorf(fhir.NotFound, "not-found", "%s/%s is not known", typ, id)
}

func gone(r *fhir.Resource) error {
	return fhir.Errorf(fhir.Gone, "deleted", "%s/%s was deleted (version %d)", r.Type, r.ID, r.VersionID)
}

// Read returns the current version of Type/id.
func (s *Service) Read(ctx context.Context, p auth.Principal, typ, id string) (*fhir.Resource, error) {
	if err := checkTypeID(typ, id); err != nil {
		return nil, err
	}
	var r *fhir.Resource
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		if r, err = tx.Current(typ, id); err != nil {
			return err
		}
		return s.hideOutside(tx, p, r)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound(typ, id)
	case err != nil:
		return nil, err
	case r.Deleted:
		return nil, gone(r)
	}
	return r, nil
}

// VRead returns one version of Type/id.
func (s *Service) VRead(ctx context.Context, p auth.Principal, typ, id, version string) (*fhir.Resource, error) {
	if err := checkTypeID(typ, id); err != nil {
		return nil, err
	}
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil || v == 0 {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "%s/%s has no version %q: versions are 1, 2, 3 ...", typ, id, version)
	}
	var r *fhir.Resource
	err = s.store.View(ctx, func(tx store.Tx) (err error) {
		if err := s.hideUnknown(tx, p, typ, id); err != nil {
			return err
		}
		if r, err = tx.Version(typ, id, v); err != nil {
			return err
		}
		return s.hideOutside(tx, p, r)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "%s/%s has no version %d", typ, id, v)
	case err != nil:
		return nil, err
	case r.Deleted:
		return nil, gone(r)
	}
	return r, nil
}
