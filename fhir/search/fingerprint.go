package search

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// ExtractionVersion counts the changes to how values are extracted and
// encoded as index keys (the evaluator, normalization, Value.Keys): bump
// it with any change that gives some resource other keys.
// TestIndexFingerprintFollowsKeys fails until it is bumped, and a store
// whose indexes were built before then refuses to open until they are
// rebuilt (healthhub reindex): an update would otherwise remove the keys the
// new code derives from the old version, not the ones the index holds.
const ExtractionVersion = 2

// IndexFingerprint names what the index keys of a resource are made of:
// ExtractionVersion and every stored parameter's definition as the
// registry resolved it. Two registries with one fingerprint give every
// resource the same keys.
func (r *Registry) IndexFingerprint() string {
	h := sha256.New()
	for _, typ := range r.SearchTypes() {
		for _, p := range r.Params(typ) {
			if !p.Stored() {
				continue
			}
			fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", typ, p.Code, p.Type, p.URL, p.Expression, strings.Join(p.Targets, ","), p.CodeSystem)
			for _, c := range p.Components {
				fmt.Fprintf(h, "%s\x00%s\x00", c.Definition, c.Expression)
			}
			h.Write([]byte{'\n'})
		}
	}
	return fmt.Sprintf("v%d-%s", ExtractionVersion, hex.EncodeToString(h.Sum(nil))[:16])
}
