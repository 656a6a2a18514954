// Package validate checks a FHIR R4 resource body at the door, before
// anything is stored (DESIGN.md rule 2): one call, Validator.Validate, gives
// nil or a *fhir.Error of Kind fhir.Invalid listing every problem found, each
// as a fhir.Issue with an R4 IssueType code and the FHIRPath-like path of the
// element, e.g. "Patient.name[0].given[1]" or, through a container,
// "Bundle.entry[3].resource.contained[0].birthDate".
//
// # What it owns
//
//   - The official R4 JSON schema (conformance.SchemaJSON), loaded once per
//     process with an overlay, and compiled per resource type
//     (#/definitions/Patient ...) with github.com/santhosh-tekuri/jsonschema/v5,
//     lazily, cached. The schema root, a oneOf over all types, is never used.
//   - The rules the schema cannot express: real calendar dates (2023-02-30),
//     whole numbers in range for integer types, strings of at most
//     1024*1024 characters, Reference.reference syntax,
//     primitive arrays aligned with their _x extensions, empty elements and
//     arrays (ele-1), Period start <= end (per-1), Extension url and ext-1,
//     contained-resource rules (dom-2..5, ref-1, ids unique in the container),
//     narrative XHTML (well formed, XML entities only, the txt-1 element and
//     attribute lists, no script URLs, some content), the Bundle rules bdl-1..12, absolute fullUrls that
//     agree with the entry's type and id, and references between the entries
//     of one Bundle that must resolve unambiguously.
//   - The other R4 invariants of error severity this server's types need
//     (invariants.go), wherever their datatype or resource appears: qty-3
//     (Quantity, Age, Count, Distance, Duration: a unit code has a system),
//     rng-2 (Range low <= high), cpt-2 (ContactPoint value needs a system),
//     obs-3, obs-6, obs-7 (Observation), pat-1 (Patient.contact), org-1,
//     org-2, org-3 (Organization) and app-2, app-3, app-4 (Appointment).
//   - The JSON reading itself: a strict decoder, so the bytes that pass are
//     bytes every parser reads the same way (no duplicate member names, valid
//     UTF-8, no byte order mark, nothing after the object), with numbers kept
//     as written (json.Number), so a decimal is never rounded.
//
// It must not know about HTTP, storage or who is asking: callers map the
// error to an OperationOutcome (fhir/rest) and decide what to do.
//
// # How a body is checked
//
// The body is decoded once. One walk over it, guided by the schema's own
// definitions (property -> definition, single or array), does two things at
// every element: it applies the checks listed above, and it applies a copy of
// the JSON-schema check (type, pattern, enum, required, no unknown members),
// derived mechanically from the same schema document. Only when that copy
// finds a problem in a resource does the compiled schema of the resource's
// type run on it, and its findings, not the copy's, are reported. A valid
// body, the common case, therefore costs one decode and one walk (~70 µs for
// a Synthea Patient on the 2-core test machine; the schema library alone
// takes ~400 µs on the same Patient, which is why it is not on that path).
// The copy must never pass what the schema rejects: the package refuses to
// load a schema that uses keywords the copy does not mirror, the fast
// pattern matchers are tested against the schema's regular expressions, and
// the tests and FuzzValidate run with a cross-check that puts every resource
// through both and fails on any disagreement.
//
// Every property whose schema is ResourceList (contained,
// Bundle.entry.resource, Bundle.entry.response.outcome,
// Parameters.parameter.resource; found in the schema, not listed by hand) is
// overlaid with a plain {"type": "object"}. The walk dispatches each such
// nested resource by its own resourceType to its own type's schema, which
// costs what that resource costs instead of the ~1.3 ms of the 146-way oneOf,
// and names the element paths through the container.
//
// # Guarantees
//
//   - Validate is safe for concurrent use. The schema document is parsed on
//     the first Validate in the process (about 0.2 s; a server that minds can
//     validate a trivial body at startup). A type's schema is compiled the
//     first time the library is needed for it (the first invalid body of
//     that type: about 0.2 s for the very first, which compiles the shared
//     datatypes, a few ms for each later type) and shared by every Validator.
//   - If Validate returns nil, the body is one JSON object whose resourceType
//     is the type asked for, it passes the R4 JSON schema of that type, and
//     every nested resource passes its own.
//   - All problems are reported, sorted by expression, so the same body always
//     gives the same outcome. Diagnostics hold only what the client sent and
//     what the specification says; they are safe to show.
//   - An error of any Kind other than Invalid is the validator's own failure
//     (Internal), never the client's.
//
// # Caveats
//
//   - The R4 JSON schema lists as required only elements of complex type; a
//     missing required primitive (Observation.status, Bundle.type, List.mode)
//     is not reported. Extension.url and Narrative.status are checked by
//     hand, as they appear everywhere. The schema also gives datatypes no
//     "type": "object" (it accepts "maritalStatus": "M"); the walk reports
//     those as structure errors.
//   - No profiles (meta.profile is not followed), no terminology (codes are
//     checked only against the enums the schema carries), and no invariants
//     beyond those named above.
//   - per-1 compares the way FHIRPath does: two values with a time compare as
//     instants; otherwise field by field at the coarser precision, and equal
//     values of different precision ("2023-06-21" and "2023-06-21T06:20:00Z")
//     cannot be ordered, which fails the invariant, as in the HL7 reference
//     validator.
//   - Conditional references (Patient?identifier=...) are accepted as syntax;
//     resolving them is the interaction layer's job. References inside a
//     Bundle are resolved only among its entries, and not in history or
//     searchset Bundles; a relative reference resolves only from an entry
//     whose fullUrl is a RESTful http(s) URL.
//   - A contained resource without an id is reported under dom-3 (nothing can
//     refer to it), which is stricter than the letter of the FHIRPath.
//   - The invariants of invariants.go refuse only what their FHIRPath refuses
//     on any reading: a primitive present only through its extensions counts
//     as present where that saves the resource and never as a value that
//     breaks a rule; rng-2 compares decimals exactly but only in one unit
//     (it does not convert g to mg); obs-7 finds a repeated code only in an
//     identical Coding, as FHIRPath's intersect does; and app-4 accepts the
//     status noshow where R4's expression names 'no-show', a code R4 does not
//     have.
//   - The number of issues grows with the body; callers bound the body size.
package validate
