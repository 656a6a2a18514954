package validate

// requiredPrimitives lists elements of primitive type with minimum
// cardinality 1 in R4, by schema definition name. The R4 JSON schema marks
// only complex elements as required, so these would otherwise pass unseen.
// The table is written from the R4 resource pages (profiles-resources.json,
// which would let us derive it, is not in ../shared); it covers the
// exchange's types, what they embed, and the common clinical types Synthea
// sends. A missing entry means a missing check, never a wrong rejection.
var requiredPrimitives = map[string][]string{
	// exchange types and their backbone elements
	"Observation":             {"status"},
	"Encounter":               {"status"},
	"Encounter_StatusHistory": {"status"},
	"Appointment":             {"status"},
	"Appointment_Participant": {"status"},
	"Patient_Link":            {"type"},
	"Consent":                 {"status"},
	"Consent_Verification":    {"verified"},
	"AuditEvent":              {"recorded"},
	"AuditEvent_Agent":        {"requestor"},
	"Bundle":                  {"type"},
	"Bundle_Link":             {"relation", "url"},
	"Bundle_Request":          {"method", "url"},
	"Bundle_Response":         {"status"},
	"OperationOutcome_Issue":  {"severity", "code"},
	// what the server itself publishes
	"CapabilityStatement":              {"status", "date", "kind", "fhirVersion", "format"},
	"CapabilityStatement_Rest":         {"mode"},
	"CapabilityStatement_Resource":     {"type"},
	"CapabilityStatement_Interaction":  {"code"},
	"CapabilityStatement_SearchParam":  {"name", "type"},
	"CapabilityStatement_Interaction1": {"code"},
	// common clinical types
	"Immunization":             {"status"},
	"MedicationRequest":        {"status", "intent"},
	"MedicationAdministration": {"status"},
	"Procedure":                {"status"},
	"DiagnosticReport":         {"status"},
	"DocumentReference":        {"status"},
	"CarePlan":                 {"status", "intent"},
	"ServiceRequest":           {"status", "intent"},
	"ImagingStudy":             {"status"},
	"Goal":                     {"lifecycleStatus"},
	"Provenance":               {"recorded"},
	"Composition":              {"status", "date", "title"},
	"List":                     {"status", "mode"},
	"Claim":                    {"status", "use", "created"},
	"ExplanationOfBenefit":     {"status", "use", "created", "outcome"},
	// data types
	"Signature":           {"when"},
	"SampledData":         {"period", "dimensions"},
	"RelatedArtifact":     {"type"},
	"Annotation":          {"text"},
	"Expression":          {"language"},
	"ParameterDefinition": {"use", "type"},
	"DataRequirement":     {"type"},
	"TriggerDefinition":   {"type"},
	"Contributor":         {"type", "name"},
}
