package conformance

import (
	"encoding/json"
	"slices"
	"time"
)

// Capability is what the REST layer reports it really serves; the
// CapabilityStatement is generated from it, never written by hand.
type Capability struct {
	Software, Version string
	BaseURL           string
	Date              time.Time
	Formats           []string
	// TypeInteractions are the interaction codes served for every resource
	// type in ResourceTypes (read, vread, update, delete, history-instance,
	// history-type, create, search-type).
	TypeInteractions   []string
	SystemInteractions []string // transaction, batch, search-system, history-system
	ResourceTypes      []string
	ConditionalRead    string // not-supported | modified-since | not-match | full-support
	UpdateCreate       bool
	// Conditional interactions, claimed for the types in Search only.
	ConditionalCreate bool   // If-None-Exist
	ConditionalUpdate bool   // PUT [type]?criteria
	ConditionalDelete string // not-supported (when "") | single | multiple
	// Search lists, per searchable type, the parameters search answers;
	// those types also get the search-type interaction.
	Search map[string][]SearchParam
	// SearchInclude and SearchRevInclude list, per searchable type, the
	// _include and _revinclude values its search answers.
	SearchInclude, SearchRevInclude map[string][]string
	// OAuthToken and OAuthIntrospect, when set, declare SMART-on-FHIR
	// security in rest.security with the oauth-uris extension.
	OAuthToken, OAuthIntrospect string
	// Operations are the type and instance operations served.
	Operations []Operation
}

// Operation declares one operation ($name) on a resource type.
type Operation struct {
	Type       string `json:"-"`
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// SearchParam declares one supported search parameter.
type SearchParam struct {
	Name       string `json:"name"`
	Definition string `json:"definition,omitempty"`
	Type       string `json:"type"`
}

type code struct {
	Code string `json:"code"`
}

type capResource struct {
	Type              string        `json:"type"`
	Interaction       []code        `json:"interaction"`
	Versioning        string        `json:"versioning"`
	ReadHistory       bool          `json:"readHistory"`
	UpdateCreate      bool          `json:"updateCreate"`
	ConditionalCreate bool          `json:"conditionalCreate"`
	ConditionalRead   string        `json:"conditionalRead"`
	ConditionalUpdate bool          `json:"conditionalUpdate"`
	ConditionalDelete string        `json:"conditionalDelete"`
	SearchInclude     []string      `json:"searchInclude,omitempty"`
	SearchRevInclude  []string      `json:"searchRevInclude,omitempty"`
	SearchParam       []SearchParam `json:"searchParam,omitempty"`
	Operation         []Operation   `json:"operation,omitempty"`
}

// CapabilityStatement renders c as an R4 CapabilityStatement.
func CapabilityStatement(c Capability) []byte {
	var typeInteractions []code
	for _, i := range c.TypeInteractions {
		typeInteractions = append(typeInteractions, code{i})
	}
	resources := make([]capResource, 0, len(c.ResourceTypes))
	for _, t := range c.ResourceTypes {
		interactions := typeInteractions
		if len(c.Search[t]) > 0 {
			interactions = append(slices.Clone(typeInteractions), code{"search-type"})
		}
		var ops []Operation
		for _, op := range c.Operations {
			if op.Type == t {
				ops = append(ops, op)
			}
		}
		// Conditional interactions select by search: only where search is.
		conditional := len(c.Search[t]) > 0
		condDelete := "not-supported"
		if conditional && c.ConditionalDelete != "" {
			condDelete = c.ConditionalDelete
		}
		resources = append(resources, capResource{
			Operation:         ops,
			Type:              t,
			Interaction:       interactions,
			SearchParam:       c.Search[t],
			SearchInclude:     c.SearchInclude[t],
			SearchRevInclude:  c.SearchRevInclude[t],
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      c.UpdateCreate,
			ConditionalRead:   c.ConditionalRead,
			ConditionalCreate: conditional && c.ConditionalCreate,
			ConditionalUpdate: conditional && c.ConditionalUpdate,
			ConditionalDelete: condDelete,
		})
	}
	var system []code
	for _, i := range c.SystemInteractions {
		system = append(system, code{i})
	}
	doc := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         c.Date.UTC().Format(time.RFC3339),
		"publisher":    "healthhub",
		"kind":         "instance",
		"software":     map[string]any{"name": c.Software, "version": c.Version},
		"implementation": map[string]any{
			"description": "healthhub FHIR R4 server",
			"url":         c.BaseURL,
		},
		"fhirVersion": "4.0.1",
		"format":      c.Formats,
	}
	rest := map[string]any{
		"mode":        "server",
		"resource":    resources,
		"interaction": system,
	}
	if c.OAuthToken != "" {
		rest["security"] = security(c.OAuthToken, c.OAuthIntrospect)
	}
	doc["rest"] = []any{rest}
	b, err := json.Marshal(doc)
	if err != nil {
		panic("conformance: CapabilityStatement does not marshal: " + err.Error())
	}
	return b
}

// security is rest.security for SMART-on-FHIR (SMART App Launch
// conformance: the oauth-uris extension names the endpoints).
func security(token, introspect string) map[string]any {
	uris := []any{map[string]any{"url": "token", "valueUri": token}}
	if introspect != "" {
		uris = append(uris, map[string]any{"url": "introspect", "valueUri": introspect})
	}
	return map[string]any{
		"cors": false,
		"service": []any{map[string]any{
			"coding": []any{map[string]any{
				"system":  "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":    "SMART-on-FHIR",
				"display": "SMART-on-FHIR",
			}},
			"text": "OAuth2 using SMART-on-FHIR backend services (client credentials, private_key_jwt)",
		}},
		"extension": []any{map[string]any{
			"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": uris,
		}},
		"description": "Every request except metadata needs an Authorization: Bearer access token from the token endpoint; see .well-known/smart-configuration.",
	}
}
