package search

import (
	"encoding/binary"
	"strings"
	"time"

	"healthhub/fhir"
)

// Value is one search value extracted from a resource. Its dynamic type
// follows the parameter's Type: TokenValue, StringValue, DateValue,
// ReferenceValue, QuantityValue, NumberValue, URIValue or CompositeValue.
//
// # Index keys
//
// Keys returns the value's index keys. Each starts with a form byte (the
// Form constants) so that the several keys one value makes can share one
// index per parameter, and the rest is built from self-delimiting,
// order-preserving parts, so a store may append a resource id directly and
// answer exact, prefix and range conditions with one range scan:
//
//   - a string part is its bytes with 0x00 escaped as 0x00 0xFF, then the
//     terminator 0x00 0x01 (AppendKeyString); a prefix without the
//     terminator (AppendKeyPrefix) is a byte prefix of every key of a longer
//     string;
//   - a decimal sorts numerically, negative numbers too (Decimal.AppendKey);
//   - an instant is 12 bytes: Unix seconds big-endian with the sign bit
//     flipped, then nanoseconds (AppendKeyTime), so every year 0 to 10000
//     fits.
//
// Key is the main key without its form byte (for a token `system|code`,
// for a date Start then End ...), also usable as a sort key.
type Value interface {
	Type() Type
	Key() []byte
	Keys() [][]byte
}

// Key forms: the first byte of each index key.
const (
	FormValue           byte = 'v' // every type: Key()
	FormCode            byte = 'c' // token: code, for a code without a system
	FormText            byte = 't' // token: normalized display or text, for :text
	FormOfType          byte = 'o' // token of an Identifier: type system, type code, value, for :of-type
	FormEnd             byte = 'z' // date: End then Start, for conditions on the end
	FormURL             byte = 'u' // reference: absolute URL (urn:uuid, canonical) without version
	FormIdentifier      byte = 'i' // reference: identifier system, value, for :identifier=system|value
	FormIdentifierValue byte = 'j' // reference: identifier value, for :identifier=value
	FormSystemCode      byte = 's' // quantity: system, code, number
	FormUnit            byte = 'n' // quantity: code or unit, number (number||unit)
)

// DateMin and DateMax stand for the open ends of a Period. No FHIR date
// reaches them: ParseDateTime reads years 0001 to 9999.
var (
	DateMin = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	DateMax = time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)
)

// TokenValue is a token: a code with its system, from code, Coding,
// CodeableConcept (one per coding, plus one with Display only for the
// text), Identifier (System, Code = value, and for :of-type the type coding
// as TypeSystem / TypeCode, one value per type coding), ContactPoint
// (System = phone, email ..., Code = value), boolean ("true" / "false") and
// string, id or uri.
type TokenValue struct {
	System, Code string
	// Display is Coding.display, CodeableConcept.text or
	// Identifier.type.text: what :text searches.
	Display string
	// TypeSystem and TypeCode are an Identifier's type coding.
	TypeSystem, TypeCode string
}

func (TokenValue) Type() Type { return Token }

// Key is system, code: it answers system|code, |code (no system) and
// system| (every code of a system). Keys adds the code alone, the text and
// the identifier type.
func (v TokenValue) Key() []byte {
	return AppendKeyString(AppendKeyString(nil, v.System), v.Code)
}

func (v TokenValue) Keys() [][]byte {
	k := newKeySet(4, 3*(len(v.System)+len(v.Code))+len(v.Display)+len(v.TypeSystem)+len(v.TypeCode)+32)
	if v.System != "" || v.Code != "" {
		k.begin(FormValue)
		k.str(v.System)
		k.str(v.Code)
		k.end()
	}
	if v.Code != "" {
		k.begin(FormCode)
		k.str(v.Code)
		k.end()
	}
	if v.Display != "" {
		k.begin(FormText)
		k.str(NormalizeString(v.Display))
		k.end()
	}
	if v.TypeCode != "" {
		k.begin(FormOfType)
		k.str(v.TypeSystem)
		k.str(v.TypeCode)
		k.str(v.Code)
		k.end()
	}
	return k.keys
}

// StringValue is a string, from string and markdown elements and the parts
// of HumanName (family, given, prefix, suffix, text) and Address (line,
// city, district, state, postalCode, country, text).
type StringValue struct {
	Normalized string // NormalizeString(Exact): what the default prefix match compares
	Exact      string // as written, for :exact
}

// NewStringValue makes the value of s.
func NewStringValue(s string) StringValue {
	return StringValue{Normalized: NormalizeString(s), Exact: s}
}

func (StringValue) Type() Type { return String }

// Key is the normalized string.
func (v StringValue) Key() []byte { return AppendKeyString(nil, v.Normalized) }

// Keys is the normalized string alone: :exact is answered from it too.
func (v StringValue) Keys() [][]byte {
	return [][]byte{AppendKeyString([]byte{FormValue}, v.Normalized)}
}

// DateValue is the interval [Start, End) a date covers at its precision:
// date, dateTime and instant as fhir.ParseDateTime reads them, a Period from
// the start of its start to the end of its end (DateMin / DateMax when
// open), and each event of a Timing.
type DateValue struct {
	fhir.DateRange
}

func (DateValue) Type() Type { return Date }

// Key is Start then End.
func (v DateValue) Key() []byte {
	return AppendKeyTime(AppendKeyTime(make([]byte, 0, 24), v.Start), v.End)
}

func (v DateValue) Keys() [][]byte {
	k := newKeySet(2, 50)
	k.begin(FormValue)
	k.buf = AppendKeyTime(AppendKeyTime(k.buf, v.Start), v.End)
	k.end()
	k.begin(FormEnd)
	k.buf = AppendKeyTime(AppendKeyTime(k.buf, v.End), v.Start)
	k.end()
	return k.keys
}

// ReferenceValue is a reference. A relative reference `Type/id` or
// `Type/id/_history/v` sets ResourceType, ID and Version; an absolute one
// sets URL (without /_history/v) and, when its path ends in Type/id,
// ResourceType and ID as well; urn:uuid: and urn:oid: set URL (and
// ResourceType from Reference.type); a
// canonical `url|version` sets URL and Version. Identifier is
// Reference.identifier (System, Code = value). References to contained
// resources (#id) are not indexed.
type ReferenceValue struct {
	ResourceType, ID, Version string
	URL                       string
	Identifier                TokenValue
}

func (ReferenceValue) Type() Type { return Reference }

// Local reports whether the reference is relative: to this server.
func (v ReferenceValue) Local() bool { return v.URL == "" && v.ResourceType != "" && v.ID != "" }

// LocalTo makes an absolute reference to this server relative: when URL is
// base + "/Type/id", it returns the reference without URL (so it is
// indexed and found as Type/id); otherwise v unchanged. base is the
// server's FHIR base URL, without a trailing slash.
func (v ReferenceValue) LocalTo(base string) ReferenceValue {
	if v.URL != "" && v.ResourceType != "" && v.ID != "" && v.URL == base+"/"+v.ResourceType+"/"+v.ID {
		v.URL = ""
	}
	return v
}

// Key is type, id for a relative reference, else the URL, else the
// identifier.
func (v ReferenceValue) Key() []byte {
	switch {
	case v.Local():
		return AppendKeyString(AppendKeyString(nil, v.ResourceType), v.ID)
	case v.URL != "":
		return AppendKeyString(nil, v.URL)
	}
	return AppendKeyString(AppendKeyString(nil, v.Identifier.System), v.Identifier.Code)
}

func (v ReferenceValue) Keys() [][]byte {
	k := newKeySet(5, len(v.ResourceType)+2*len(v.ID)+len(v.URL)+len(v.Identifier.System)+2*len(v.Identifier.Code)+32)
	if v.Local() {
		k.begin(FormValue)
		k.str(v.ResourceType)
		k.str(v.ID)
		k.end()
	}
	if v.URL != "" {
		k.begin(FormURL)
		k.str(v.URL)
		k.end()
	}
	if v.Identifier.Code != "" || v.Identifier.System != "" {
		k.begin(FormIdentifier)
		k.str(v.Identifier.System)
		k.str(v.Identifier.Code)
		k.end()
	}
	if v.Identifier.Code != "" {
		k.begin(FormIdentifierValue)
		k.str(v.Identifier.Code)
		k.end()
	}
	return k.keys
}

// ParseReference reads a reference string (Reference.reference, or a
// canonical / uri). It returns the zero value for what is not a
// reference: a contained #id, a search URL, junk.
func ParseReference(s string) ReferenceValue {
	if s == "" || s[0] == '#' {
		return ReferenceValue{}
	}
	if strings.HasPrefix(s, "urn:") || strings.Contains(s, "://") {
		var v ReferenceValue
		if u, ver, ok := strings.Cut(s, "|"); ok { // canonical|version
			s, v.Version = u, ver
		}
		v.URL = s
		segs := strings.Split(s, "/")
		if n := len(segs); n >= 4 && segs[n-2] == "_history" && isResourceType(segs[n-4]) && isID(segs[n-3]) {
			v.ResourceType, v.ID, v.Version = segs[n-4], segs[n-3], segs[n-1]
			v.URL = strings.Join(segs[:n-2], "/")
		} else if n >= 2 && isResourceType(segs[n-2]) && isID(segs[n-1]) {
			v.ResourceType, v.ID = segs[n-2], segs[n-1]
		}
		return v
	}
	typ, rest, ok := strings.Cut(s, "/")
	if !ok || !isResourceType(typ) {
		return ReferenceValue{}
	}
	id, hist, versioned := strings.Cut(rest, "/_history/")
	if !isID(id) || (versioned && !isID(hist)) {
		return ReferenceValue{}
	}
	return ReferenceValue{ResourceType: typ, ID: id, Version: hist}
}

// isResourceType accepts the shape of a resource type name: a capital
// letter, then letters.
func isResourceType(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// isID accepts a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// QuantityValue is a Quantity (or Age, Duration ...), a SampledData's
// origin, or a bare number.
type QuantityValue struct {
	Value              Decimal
	Comparator         string // <, <=, >=, > as written
	System, Code, Unit string
}

func (QuantityValue) Type() Type { return Quantity }

// Key is the number, whatever the unit.
func (v QuantityValue) Key() []byte { return v.Value.AppendKey(nil) }

func (v QuantityValue) Keys() [][]byte {
	n := len(v.Value.String()) + 8
	k := newKeySet(4, 4*n+len(v.System)+2*len(v.Code)+len(v.Unit)+16)
	k.begin(FormValue)
	k.buf = v.Value.AppendKey(k.buf)
	k.end()
	if v.System != "" || v.Code != "" {
		k.begin(FormSystemCode)
		k.str(v.System)
		k.str(v.Code)
		k.buf = v.Value.AppendKey(k.buf)
		k.end()
	}
	if v.Code != "" {
		k.begin(FormUnit)
		k.str(v.Code)
		k.buf = v.Value.AppendKey(k.buf)
		k.end()
	}
	if v.Unit != "" && v.Unit != v.Code {
		k.begin(FormUnit)
		k.str(v.Unit)
		k.buf = v.Value.AppendKey(k.buf)
		k.end()
	}
	return k.keys
}

// NumberValue is an integer or decimal.
type NumberValue struct {
	Value Decimal
}

func (NumberValue) Type() Type { return Number }

func (v NumberValue) Key() []byte    { return v.Value.AppendKey(nil) }
func (v NumberValue) Keys() [][]byte { return [][]byte{v.Value.AppendKey([]byte{FormValue})} }

// URIValue is a uri, url or canonical, compared as written.
type URIValue struct {
	URI string
}

func (URIValue) Type() Type { return URI }

func (v URIValue) Key() []byte    { return AppendKeyString(nil, v.URI) }
func (v URIValue) Keys() [][]byte { return [][]byte{AppendKeyString([]byte{FormValue}, v.URI)} }

// CompositeValue is one tuple of a composite parameter: a value per
// component, all taken from the same focus element (an Observation with two
// components makes two tuples, not their cross product).
type CompositeValue struct {
	Components []Value
}

func (CompositeValue) Type() Type { return Composite }

// Key is the components' Keys concatenated.
func (v CompositeValue) Key() []byte {
	var b []byte
	for _, c := range v.Components {
		b = append(b, c.Key()...)
	}
	return b
}

// Keys are FormValue followed by one key of each component (with its form
// byte): every combination of the components' forms except :text,
// :of-type and a quantity's unit forms, so `code$value` conditions work
// with `system|code` or `code`. A quantity part is keyed by its number
// alone: its units multiplied the keys by three, and a unit in the query is
// checked on the candidates instead (compileComposite).
func (v CompositeValue) Keys() [][]byte {
	keys := [][]byte{{FormValue}}
	for _, c := range v.Components {
		var next [][]byte
		for _, ck := range c.Keys() {
			switch ck[0] {
			case FormText, FormOfType, FormSystemCode, FormUnit:
				continue
			}
			for _, k := range keys {
				next = append(next, append(k[:len(k):len(k)], ck...))
			}
		}
		keys = next
	}
	return keys
}

// keySet builds a value's keys in one buffer: two allocations for all of
// them. A key is a window of the buffer; when the buffer grows, earlier keys
// keep the old one, which stays valid.
type keySet struct {
	buf   []byte
	keys  [][]byte
	start int
}

func newKeySet(n, size int) keySet {
	return keySet{buf: make([]byte, 0, size), keys: make([][]byte, 0, n)}
}

func (k *keySet) begin(form byte) { k.start = len(k.buf); k.buf = append(k.buf, form) }
func (k *keySet) str(s string)    { k.buf = AppendKeyString(k.buf, s) }
func (k *keySet) end()            { k.keys = append(k.keys, k.buf[k.start:len(k.buf):len(k.buf)]) }

// AppendKeyString appends s escaped and terminated: 0x00 becomes 0x00 0xFF,
// then 0x00 0x01 ends it. Byte order of the results is the order of the
// strings, and the result is never a prefix of another's.
func AppendKeyString(b []byte, s string) []byte {
	return append(AppendKeyPrefix(b, s), 0x00, 0x01)
}

// AppendKeyPrefix appends s escaped but not terminated: a byte prefix of
// AppendKeyString of every string that starts with s.
func AppendKeyPrefix(b []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return append(b, s...)
		}
		b = append(append(b, s[:i]...), 0x00, 0xFF)
		s = s[i+1:]
	}
}

// AppendKeyTime appends t as 12 bytes whose order is time order.
func AppendKeyTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}
