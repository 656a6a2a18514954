package conformance

import (
	_ "embed"
	"encoding/json"
	"sort"
	"sync"
)

// The official FHIR R4 (4.0.1) artifacts, CC0, copied byte for byte from
// ../shared/fhir/r4 (see r4/README.md for their origin and checksums).

//go:embed r4/fhir.schema.json
var schemaJSON []byte

//go:embed r4/search-parameters.json
var searchParametersJSON []byte

// SchemaJSON returns the official R4 JSON schema (draft-06). Callers must not
// modify the returned slice.
func SchemaJSON() []byte { return schemaJSON }

// SearchParametersJSON returns the official Bundle of R4 SearchParameter
// resources. Callers must not modify the returned slice.
func SearchParametersJSON() []byte { return searchParametersJSON }

var (
	typesOnce sync.Once
	typeSet   map[string]bool
	typeList  []string
)

func loadTypes() {
	var doc struct {
		Discriminator struct {
			Mapping map[string]string `json:"mapping"`
		} `json:"discriminator"`
	}
	if err := json.Unmarshal(schemaJSON, &doc); err != nil {
		panic("conformance: embedded R4 schema does not parse: " + err.Error())
	}
	typeSet = make(map[string]bool, len(doc.Discriminator.Mapping))
	for t := range doc.Discriminator.Mapping {
		typeSet[t] = true
		typeList = append(typeList, t)
	}
	sort.Strings(typeList)
}

// IsResourceType reports whether t is one of the 146 R4 resource types.
func IsResourceType(t string) bool {
	typesOnce.Do(loadTypes)
	return typeSet[t]
}

// ResourceTypes lists every R4 resource type, sorted.
func ResourceTypes() []string {
	typesOnce.Do(loadTypes)
	return append([]string(nil), typeList...)
}
