package interaction

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// This file confines a principal with patient/ scopes (auth.Principal.
// Confined) to its patient's compartment: it sees and writes only Patient/
// <its patient> (and the patients linked to it) and the resources whose
// compartment parameters refer to them. Anything else reads as unknown
// (404) and writes are refused (403): never silently widened.

// patientCompartment lists, per resource type of the R4 Patient compartment
// (CompartmentDefinition/patient), the search parameters that put a
// resource in it. Only the types with a search index here are searched
// (the registry decides), so a type becomes part of $everything as soon
// as it is indexed. Patient's own "link" is left out: it would bring in
// other patients' records; linked records come through linkedPatients.
var patientCompartment = []struct {
	typ    string
	params []string
}{
	{"AllergyIntolerance", []string{"patient", "recorder", "asserter"}},
	{"Appointment", []string{"actor"}},
	{"CarePlan", []string{"patient", "performer"}},
	{"CareTeam", []string{"patient", "participant"}},
	{"Condition", []string{"patient", "asserter"}},
	{"Consent", []string{"patient"}},
	{"Coverage", []string{"policy-holder", "subscriber", "beneficiary", "payor"}},
	{"DiagnosticReport", []string{"subject"}},
	{"DocumentReference", []string{"subject", "author"}},
	{"Encounter", []string{"patient"}},
	{"Goal", []string{"patient"}},
	{"ImagingStudy", []string{"patient"}},
	{"Immunization", []string{"patient"}},
	{"MedicationAdministration", []string{"patient", "performer", "subject"}},
	{"MedicationRequest", []string{"subject"}},
	{"MedicationStatement", []string{"subject"}},
	{"Observation", []string{"subject", "performer"}},
	{"Procedure", []string{"patient", "performer"}},
	{"ServiceRequest", []string{"subject", "performer"}},
}

// compartmentParams returns the parameters that put a resource of typ in
// the Patient compartment; ok false when no resource of typ is in it.
func compartmentParams(typ string) (params []string, ok bool) {
	for _, c := range patientCompartment {
		if c.typ == typ {
			return c.params, true
		}
	}
	return nil, false
}

// compartmentPatients are the Patient ids whose compartment p is confined
// to: its patient and, through linkedPatients, the records the master
// patient index links to it.
func (s *Service) compartmentPatients(tx store.Tx, p auth.Principal) ([]string, error) {
	if p.Patient == "" {
		return nil, nil // confined without a patient: an empty compartment
	}
	return s.linkedPatients(tx, p.Patient)
}

// inCompartment reports whether the resource typ/id with JSON body is in
// the compartment of one of patients: it is one of them, or one of its
// compartment parameters refers to one of them. References are read with
// the search registry, as search reads them, so a type the registry does
// not index is in no compartment (deny by default).
func (s *Service) inCompartment(typ, id string, body []byte, patients []string) (bool, error) {
	if typ == "Patient" {
		return slices.Contains(patients, id), nil
	}
	params, ok := compartmentParams(typ)
	if !ok || len(patients) == 0 || !s.registry.Searchable(typ) {
		return false, nil
	}
	entries, err := s.registry.Extract(typ, body)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		ref, isRef := e.Value.(search.ReferenceValue)
		if isRef {
			ref = s.localRef(ref)
		}
		if isRef && ref.Local() && ref.ResourceType == "Patient" && slices.Contains(params, e.Param) && slices.Contains(patients, ref.ID) {
			return true, nil
		}
	}
	return false, nil
}

// shown reports whether p may see version r (read, vread, history, a
// search match): it passes unless p is confined for r's type and r is
// outside the compartment. A deletion marker has no content: it is judged
// by the version it deleted.
func (s *Service) shown(tx store.Tx, p auth.Principal, r *fhir.Resource) (bool, error) {
	if !p.Confined(r.Type) {
		return true, nil
	}
	if r.Deleted {
		if r.VersionID <= 1 {
			return false, nil
		}
		prev, err := tx.Version(r.Type, r.ID, r.VersionID-1)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		r = prev
		if r.Deleted {
			return false, nil
		}
	}
	patients, err := s.compartmentPatients(tx, p)
	if err != nil {
		return false, err
	}
	return s.inCompartment(r.Type, r.ID, r.JSON, patients)
}

// hideOutside is store.ErrNotFound when p may not see r: a resource
// outside a confined principal's compartment reads as an unknown one, so
// its existence is not revealed.
func (s *Service) hideOutside(tx store.Tx, p auth.Principal, r *fhir.Resource) error {
	ok, err := s.shown(tx, p, r)
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	return err
}

// hideUnknown answers ErrNotFound, as for an unknown id, when p is confined
// for typ and Type/id as it is now (its last content, when deleted) is
// outside p's compartment: for instance history and vread, what a resource
// is now decides whether it is known at all, whatever an older version
// held. Then each version shown is checked on its own (hideOutside).
func (s *Service) hideUnknown(tx store.Tx, p auth.Principal, typ, id string) error {
	if !p.Confined(typ) {
		return nil
	}
	cur, err := tx.Current(typ, id)
	if err != nil {
		return err
	}
	return s.hideOutside(tx, p, cur)
}

// mayWrite refuses a write by a principal confined for typ unless both
// what is there now (its last content, when deleted) and what is written
// (obj; nil for a delete) are in the compartment: a confined principal
// may neither take another patient's resource over nor hand one of its own
// to another patient.
func (s *Service) mayWrite(tx store.Tx, p auth.Principal, typ, id string, obj *fhir.Object) error {
	if !p.Confined(typ) {
		return nil
	}
	refuse := func(what string) error {
		return fhir.Errorf(fhir.Forbidden, "forbidden", "%s %s/%s is outside the compartment of Patient/%s, the only one this token's patient/ scopes may write", what, typ, id, p.Patient)
	}
	cur, err := current(tx, typ, id)
	if err != nil {
		return err
	}
	if cur != nil {
		ok, err := s.shown(tx, p, cur)
		if err != nil {
			return err
		}
		if !ok {
			return refuse("the existing")
		}
	}
	if obj == nil {
		return nil
	}
	patients, err := s.compartmentPatients(tx, p)
	if err != nil {
		return err
	}
	ok, err := s.inCompartment(typ, id, obj.Bytes(), patients)
	if err != nil {
		return err
	}
	if !ok {
		return refuse("the written")
	}
	return nil
}

// ownPatient is NotFound when p is confined to a patient's compartment for
// some type and Patient/id is not that patient (nor linked to it):
// $everything of another patient reads as an unknown one. The types p is
// not confined for would pass visible anyway, but a confined principal asks
// for its own record only: what it may see of others is not its
// compartment's everything.
func (s *Service) ownPatient(ctx context.Context, p auth.Principal, id string) error {
	if !p.ConfinedAny() {
		return nil
	}
	return s.store.View(ctx, func(tx store.Tx) error {
		patients, err := s.compartmentPatients(tx, p)
		if err != nil {
			return err
		}
		if !slices.Contains(patients, id) {
			return notFound("Patient", id)
		}
		return nil
	})
}

// snapshotScope is the scope of the paging snapshots of a search (base).
// The pages of a snapshot are not filtered again, and what it holds was
// filtered for the principal that took it: its scopes (for $everything,
// the types it may see), its patient compartment, and the types its
// chains and _has went through. So a cursor serves that principal alone,
// as the same client renews its token, and never another client that
// came by the link.
func snapshotScope(p auth.Principal, base string) string {
	return strings.Join([]string{base, p.Client, p.Organization, p.Patient, p.PurposeOfUse, p.User,
		strings.Join(p.Scopes, " "), strconv.FormatBool(p.BreakGlass), strconv.FormatBool(p.Unrestricted)}, "\x00")
}

// refuseConfinedHistory refuses type and system history to a principal
// confined for the type (any type, for system history): history pages are
// not filtered by compartment, so they would show other patients' versions.
func refuseConfinedHistory(p auth.Principal, typ string) error {
	if typ == "" && p.ConfinedAny() || typ != "" && p.Confined(typ) {
		return fhir.Errorf(fhir.Forbidden, "forbidden", "type and system history are not available to a token with patient/ scopes: read the instance history of each resource instead")
	}
	return nil
}
