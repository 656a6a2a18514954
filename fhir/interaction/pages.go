package interaction

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pageCache keeps the frozen result lists of searches whose results span
// several pages, so that following `next` visits every match exactly once
// however the data changes meanwhile. Bounded in count, in ids held
// altogether (memory: a 100k-match search holds ~5 MB) and in age: a cursor
// that has fallen out answers 410, and the client searches again.
type pageCache struct {
	mu      sync.Mutex
	entries map[string]*snapshot
	order   []string // insertion order, oldest first, for eviction
	maxN    int
	maxIDs  int // ids held by all snapshots together
	held    int
	ttl     time.Duration
	now     func() time.Time
}

type snapshot struct {
	typ     string
	ids     []string
	created time.Time
}

func newPageCache(maxN, maxIDs int, ttl time.Duration) *pageCache {
	return &pageCache{entries: map[string]*snapshot{}, maxN: maxN, maxIDs: maxIDs, ttl: ttl, now: time.Now}
}

func (c *pageCache) put(typ string, ids []string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && (len(c.order) >= c.maxN || c.held+len(ids) > c.maxIDs) {
		c.held -= len(c.entries[c.order[0]].ids)
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	c.entries[token] = &snapshot{typ: typ, ids: ids, created: c.now()}
	c.order = append(c.order, token)
	c.held += len(ids)
	return token
}

// get reads a cursor "token.offset".
func (c *pageCache) get(cursor, typ string) (ids []string, offset int, ok bool) {
	token, off, found := strings.Cut(cursor, ".")
	n, err := strconv.Atoi(off)
	if !found || err != nil || n < 0 {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.entries[token]
	if s == nil || s.typ != typ || c.now().Sub(s.created) > c.ttl || n > len(s.ids) {
		return nil, 0, false
	}
	return s.ids, n, true
}
