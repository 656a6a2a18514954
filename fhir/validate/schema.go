package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"healthhub/conformance"
)

// schemaURL is the schema's own id. Adding the document under that URL keeps
// the compiler from ever resolving a $ref against anything else.
const schemaURL = "http://hl7.org/fhir/json-schema/4.0"

// kind says how the walker treats the value of a property.
type kind uint8

const (
	kindComplex   kind = iota + 1 // a datatype or backbone element: walk its members
	kindPrimitive                 // a JSON string, number or boolean
	kindPrimExt                   // "_x": the id and extensions of primitive x
	kindResource                  // a whole resource (schema ResourceList): dispatch by its resourceType
	kindXHTML                     // Narrative.div
)

// property is one member of a definition, as the walker needs it.
type property struct {
	name  string
	array bool
	kind  kind
	prim  string      // for kindPrimitive: the FHIR primitive type, e.g. "dateTime"; "code" for inline enums
	def   *definition // for kindComplex and kindPrimExt

	// What the JSON schema itself demands of each value (of each item, for
	// an array): the walker's copy of the schema check (see schemaOK).
	jsonType string          // "string", "number", "boolean", "object", or "" for no type keyword
	pattern  *pattern        // applies to strings only, as in JSON Schema
	enum     map[string]bool // nil: no enum
}

// definition is one object definition of the schema (a resource, a datatype
// or a backbone element such as Bundle_Entry).
type definition struct {
	name     string
	props    map[string]*property
	required []string
	resource bool // has a resourceType const: a resource type
	// choices are the choice elements (value[x]): base name -> the JSON
	// names of its types (valueQuantity, valueString ...), of which a
	// value holds one (choiceGroups).
	choices map[string][]string
}

// schemaSet is the loaded R4 schema: the definitions index for the walker and
// the compiler with its per-type cache. There is one per process; it is
// immutable once loaded, except the cache, which only grows.
type schemaSet struct {
	defs     map[string]*definition
	mu       sync.Mutex // guards compiler: jsonschema.Compiler is not safe for concurrent use
	compiler *jsonschema.Compiler
	compiled sync.Map // resource type -> *jsonschema.Schema
}

var (
	loadOnce  sync.Once
	loaded    *schemaSet
	loadError error
)

// schemas loads the embedded schema on first use. Loading parses the 4 MB
// document (about 0.2 s), so it happens once per process, shared by every
// Validator, and not at all in a process that never validates.
func schemas() (*schemaSet, error) {
	loadOnce.Do(func() { loaded, loadError = load(conformance.SchemaJSON()) })
	return loaded, loadError
}

func load(raw []byte) (*schemaSet, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("validate: embedded R4 schema does not parse: %w", err)
	}
	rawDefs, ok := doc["definitions"].(map[string]any)
	if !ok {
		return nil, errors.New("validate: embedded R4 schema has no definitions")
	}
	defs, err := index(rawDefs)
	if err != nil {
		return nil, err
	}
	s := &schemaSet{defs: defs}

	// The overlay. ResourceList is a oneOf over all 146 resource types; every
	// property that holds a whole resource (contained, Bundle.entry.resource,
	// Parameters.parameter.resource ...) refers to it. Validating through it
	// costs ~1.3 ms per nested resource and, when one branch fails, reports
	// 146 useless errors. Here it only has to be an object: the walker
	// dispatches each nested resource to its own type's schema. The root's
	// oneOf goes too, so the compiler never compiles (and no caller can
	// validate against) all 146 types at once. The artifact itself stays as
	// HL7 published it; this changes only the decoded copy.
	rawDefs["ResourceList"] = map[string]any{"type": "object"}
	delete(doc, "oneOf")
	delete(doc, "discriminator")

	overlaid, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("validate: re-encoding the R4 schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft6
	// Everything is in the one embedded document; never go to the network
	// or the file system for a $ref.
	c.LoadURL = func(u string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("validate: refusing to load %s: only the embedded R4 schema is available", u)
	}
	if err := c.AddResource(schemaURL, bytes.NewReader(overlaid)); err != nil {
		return nil, fmt.Errorf("validate: loading the R4 schema: %w", err)
	}
	s.compiler = c
	return s, nil
}

// schema returns the compiled schema of one resource type, compiling it on
// first use. Compiled schemas are immutable and safe for concurrent Validate.
func (s *schemaSet) schema(resourceType string) (*jsonschema.Schema, error) {
	if sch, ok := s.compiled.Load(resourceType); ok {
		return sch.(*jsonschema.Schema), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.compiled.Load(resourceType); ok {
		return sch.(*jsonschema.Schema), nil
	}
	sch, err := s.compiler.Compile(schemaURL + "#/definitions/" + resourceType)
	if err != nil {
		return nil, fmt.Errorf("validate: compiling the R4 schema of %s: %w", resourceType, err)
	}
	s.compiled.Store(resourceType, sch)
	return sch, nil
}

// index builds the walker's view of the schema: for every object definition,
// its properties with their type, cardinality, kind and the JSON-schema
// constraints on their values. The set of properties holding a whole
// resource is whatever refers to ResourceList, so it follows the schema
// rather than a hand-kept list.
//
// The walker re-implements the schema check for speed (see doc.go), so
// index refuses a schema that uses any keyword it does not mirror: a new
// artifact then fails loudly instead of being checked partly.
func index(rawDefs map[string]any) (map[string]*definition, error) {
	// Primitive types are the definitions without properties; inline
	// primitive properties (Extension.valueDate ...) copy their pattern and
	// type, which is how they are recognised below.
	prims := make(map[string][]string) // pattern + "\x00" + type -> primitive names
	for name, raw := range rawDefs {
		m, _ := raw.(map[string]any)
		if err := onlyKeywords(name, m, "description", "properties", "additionalProperties", "required", "type", "pattern", "oneOf"); err != nil {
			return nil, err
		}
		if _, hasProps := m["properties"]; hasProps || name == "ResourceList" || name == "xhtml" {
			continue
		}
		k := str(m["pattern"]) + "\x00" + str(m["type"])
		prims[k] = append(prims[k], name)
	}
	var allPrims []string
	for _, names := range prims {
		sort.Strings(names)
		allPrims = append(allPrims, names...)
	}
	sort.Strings(allPrims)

	patterns := make(map[string]*pattern)
	compilePattern := func(src string) (*pattern, error) {
		if src == "" {
			return nil, nil
		}
		if p, ok := patterns[src]; ok {
			return p, nil
		}
		p, err := newPattern(src)
		if err != nil {
			return nil, err
		}
		patterns[src] = p
		return p, nil
	}

	defs := make(map[string]*definition)
	for name, raw := range rawDefs {
		m, _ := raw.(map[string]any)
		if _, ok := m["properties"]; ok {
			if ap, ok := m["additionalProperties"].(bool); !ok || ap {
				return nil, fmt.Errorf("validate: R4 schema definition %s allows additional properties", name)
			}
			if _, ok := m["type"]; ok {
				return nil, fmt.Errorf("validate: R4 schema definition %s has a type", name)
			}
			defs[name] = &definition{name: name}
		}
	}
	for name, d := range defs {
		m := rawDefs[name].(map[string]any)
		props := m["properties"].(map[string]any)
		d.props = make(map[string]*property, len(props))
		for _, r := range toSlice(m["required"]) {
			d.required = append(d.required, str(r))
		}
		sort.Strings(d.required)
		for pname, raw := range props {
			ps, _ := raw.(map[string]any)
			if err := onlyKeywords(name+"."+pname, ps, "description", "$ref", "items", "type", "enum", "pattern", "const"); err != nil {
				return nil, err
			}
			if c, ok := ps["const"]; ok {
				// Only a resource's resourceType is a const, naming the
				// resource (ExampleScenario.instance.resourceType is a code).
				if pname != "resourceType" || c != name {
					return nil, fmt.Errorf("validate: R4 schema property %s.%s has an unexpected const", name, pname)
				}
				d.resource = true
				continue
			}
			p := &property{name: pname}
			if str(ps["type"]) == "array" {
				items, ok := ps["items"].(map[string]any)
				if !ok {
					return nil, fmt.Errorf("validate: R4 schema array %s.%s has no items schema", name, pname)
				}
				if err := onlyKeywords(name+"."+pname+".items", items, "description", "$ref", "enum"); err != nil {
					return nil, err
				}
				p.array = true
				ps = items
			} else if _, ok := ps["items"]; ok {
				return nil, fmt.Errorf("validate: R4 schema property %s.%s has items but is no array", name, pname)
			}
			ref := strings.TrimPrefix(str(ps["$ref"]), "#/definitions/")
			var err error
			switch {
			case ref == "ResourceList":
				p.kind = kindResource
				p.jsonType = "object" // the overlay
			case ref == "xhtml":
				p.kind = kindXHTML // the schema says nothing about it
			case strings.HasPrefix(pname, "_"):
				if defs[ref] == nil {
					return nil, fmt.Errorf("validate: R4 schema property %s.%s is not an element", name, pname)
				}
				p.kind = kindPrimExt
				p.def = defs[ref]
			case defs[ref] != nil:
				p.kind = kindComplex
				p.def = defs[ref]
			case ref != "":
				pd, ok := rawDefs[ref].(map[string]any)
				if !ok {
					return nil, fmt.Errorf("validate: R4 schema property %s.%s refers to a missing %s", name, pname, ref)
				}
				p.kind = kindPrimitive
				p.prim = ref
				p.jsonType = str(pd["type"])
				p.pattern, err = compilePattern(str(pd["pattern"]))
			case ps["enum"] != nil:
				p.kind = kindPrimitive
				p.prim = "code"
				p.enum = make(map[string]bool)
				for _, e := range toSlice(ps["enum"]) {
					s, ok := e.(string)
					if !ok {
						return nil, fmt.Errorf("validate: R4 schema enum %s.%s has a non-string value", name, pname)
					}
					p.enum[s] = true
				}
			default:
				p.kind = kindPrimitive
				p.prim = inlinePrimitive(pname, prims[str(ps["pattern"])+"\x00"+str(ps["type"])], allPrims)
				p.jsonType = str(ps["type"])
				p.pattern, err = compilePattern(str(ps["pattern"]))
			}
			if err != nil {
				return nil, err
			}
			switch p.jsonType {
			case "", "string", "number", "boolean", "object":
			default:
				return nil, fmt.Errorf("validate: R4 schema property %s.%s has type %q", name, pname, p.jsonType)
			}
			d.props[pname] = p
		}
		d.choices = choiceGroups(props, rawDefs)
	}
	return defs, nil
}

// choiceGroups finds the choice elements of one definition. The R4 JSON
// schema lists each type of a choice element (value[x]) as a property of
// its own (valueQuantity, valueString ...), so it cannot say that only one
// may be present (max cardinality 1, formats.html "Choice of Datatypes").
// A group is two or more single-valued properties named base + a type's
// name with its first letter in upper case, all with the same description
// (the element's): Encounter's reasonCode and reasonReference are two
// elements, arrays with descriptions of their own.
func choiceGroups(props, rawDefs map[string]any) map[string][]string {
	groups := map[string][]string{}
	descs := map[string]string{}
	mixed := map[string]bool{}
	for pname, raw := range props {
		ps, _ := raw.(map[string]any)
		if strings.HasPrefix(pname, "_") || str(ps["type"]) == "array" {
			continue
		}
		for i := 1; i < len(pname); i++ {
			if pname[i] < 'A' || pname[i] > 'Z' {
				continue
			}
			typ := pname[i:]
			if _, ok := rawDefs[typ]; !ok {
				typ = strings.ToLower(typ[:1]) + typ[1:] // a primitive: dateTime
				if _, ok := rawDefs[typ]; !ok {
					continue
				}
			}
			base := pname[:i]
			if d, seen := descs[base]; seen && d != str(ps["description"]) {
				mixed[base] = true
			}
			descs[base] = str(ps["description"])
			groups[base] = append(groups[base], pname)
			break
		}
	}
	for base, names := range groups {
		if len(names) < 2 || mixed[base] {
			delete(groups, base)
			continue
		}
		sort.Strings(names)
	}
	return groups
}

func onlyKeywords(where string, m map[string]any, allowed ...string) error {
	for k := range m {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("validate: R4 schema %s uses %q, which the fast check does not mirror", where, k)
		}
	}
	return nil
}

// inlinePrimitive names the primitive type of an inline property such as
// Extension.valueDateTime. Its pattern and type usually identify it. Where
// several primitives share them (uri, url, canonical; string, markdown), or
// none does (base64Binary), the property name's type suffix settles it; the
// longest suffix wins, so valueDateTime is a dateTime, not a time.
func inlinePrimitive(pname string, candidates, all []string) string {
	if len(candidates) == 1 {
		return candidates[0]
	}
	if len(candidates) == 0 {
		candidates = all
	}
	best := ""
	for _, c := range candidates {
		if strings.HasSuffix(strings.ToLower(pname), strings.ToLower(c)) && len(c) > len(best) {
			best = c
		}
	}
	if best == "" {
		return "string"
	}
	return best
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func toSlice(v any) []any {
	a, _ := v.([]any)
	return a
}
