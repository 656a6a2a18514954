package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The auth package's records. The store keeps their bytes; what they mean
// (JSON client records, PKCS#8 keys) is the auth package's business.
//
//	auth/clients   client id -> client record (opaque bytes)
//	auth/keys      kid -> signing key record (opaque bytes)
//	auth/jti       issuer 0x00 jti -> u64 unix ms the assertion expires
//
// The sub-buckets are created on first write, so a database made before
// auth existed opens unchanged and reads as "no clients, no keys".
var (
	bucketAuth        = []byte("auth")
	bucketAuthClients = []byte("clients")
	bucketAuthKeys    = []byte("keys")
	bucketAuthJTI     = []byte("jti")
)

// AuthStore is what the auth package needs from a backend: client records,
// the server's signing keys, and a replay cache of assertion ids. Each
// method is its own transaction: auth writes are independent of resource
// writes.
type AuthStore interface {
	// Client returns the record of client id; ErrNotFound when absent.
	Client(ctx context.Context, id string) ([]byte, error)
	// Clients visits every client record in id order.
	Clients(ctx context.Context, fn func(id string, rec []byte) error) error
	// PutClient creates or replaces the record of client id.
	PutClient(ctx context.Context, id string, rec []byte) error
	// DeleteClient removes client id; ErrNotFound when absent.
	DeleteClient(ctx context.Context, id string) error
	// SigningKeys visits every signing key record in kid order.
	SigningKeys(ctx context.Context, fn func(kid string, rec []byte) error) error
	// PutSigningKey creates or replaces a signing key record.
	PutSigningKey(ctx context.Context, kid string, rec []byte) error
	// DeleteSigningKey removes a signing key record (absent: no error).
	DeleteSigningKey(ctx context.Context, kid string) error
	// UseJTI records that issuer used jti, valid until exp, and reports
	// whether it was fresh: false when it was recorded before and has not
	// expired at now. Entries expired at now are purged on the way.
	UseJTI(ctx context.Context, issuer, jti string, exp, now time.Time) (fresh bool, err error)
}

var _ AuthStore = (*Bolt)(nil)

// authBucket returns auth/<name>, creating both when create is set; nil
// when absent and create is false.
func authBucket(btx *bolt.Tx, name []byte, create bool) (*bolt.Bucket, error) {
	if !create {
		if a := btx.Bucket(bucketAuth); a != nil {
			return a.Bucket(name), nil
		}
		return nil, nil
	}
	a, err := btx.CreateBucketIfNotExists(bucketAuth)
	if err != nil {
		return nil, err
	}
	return a.CreateBucketIfNotExists(name)
}

// authUpdate runs fn in a write transaction through the same group commit
// as resource writes. fn may run more than once: it must recompute
// everything it reports from bucket state.
func (s *Bolt) authUpdate(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.writeTxs.Add(1)
	err := s.group.update(func(t *boltTx) error { return fn(t.btx) })
	if err != nil {
		s.failedWrites.Add(1)
	}
	return err
}

func (s *Bolt) authView(ctx context.Context, name []byte, fn func(*bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.readTxs.Add(1)
	return s.db.View(func(btx *bolt.Tx) error {
		b, _ := authBucket(btx, name, false)
		return fn(b)
	})
}

// Client implements AuthStore.
func (s *Bolt) Client(ctx context.Context, id string) ([]byte, error) {
	var rec []byte
	err := s.authView(ctx, bucketAuthClients, func(b *bolt.Bucket) error {
		if b != nil {
			rec = bytes.Clone(b.Get([]byte(id)))
		}
		if rec == nil {
			return ErrNotFound
		}
		return nil
	})
	return rec, err
}

// Clients implements AuthStore.
func (s *Bolt) Clients(ctx context.Context, fn func(id string, rec []byte) error) error {
	return s.authView(ctx, bucketAuthClients, func(b *bolt.Bucket) error { return forEachCopy(b, fn) })
}

// PutClient implements AuthStore.
func (s *Bolt) PutClient(ctx context.Context, id string, rec []byte) error {
	return s.authUpdate(ctx, func(btx *bolt.Tx) error {
		b, err := authBucket(btx, bucketAuthClients, true)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), rec)
	})
}

// DeleteClient implements AuthStore.
func (s *Bolt) DeleteClient(ctx context.Context, id string) error {
	return s.authUpdate(ctx, func(btx *bolt.Tx) error {
		b, err := authBucket(btx, bucketAuthClients, true)
		if err != nil {
			return err
		}
		if b.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// SigningKeys implements AuthStore.
func (s *Bolt) SigningKeys(ctx context.Context, fn func(kid string, rec []byte) error) error {
	return s.authView(ctx, bucketAuthKeys, func(b *bolt.Bucket) error { return forEachCopy(b, fn) })
}

// PutSigningKey implements AuthStore.
func (s *Bolt) PutSigningKey(ctx context.Context, kid string, rec []byte) error {
	return s.authUpdate(ctx, func(btx *bolt.Tx) error {
		b, err := authBucket(btx, bucketAuthKeys, true)
		if err != nil {
			return err
		}
		return b.Put([]byte(kid), rec)
	})
}

// DeleteSigningKey implements AuthStore.
func (s *Bolt) DeleteSigningKey(ctx context.Context, kid string) error {
	return s.authUpdate(ctx, func(btx *bolt.Tx) error {
		b, err := authBucket(btx, bucketAuthKeys, true)
		if err != nil {
			return err
		}
		return b.Delete([]byte(kid))
	})
}

// jtiPurgeEvery: UseJTI sweeps expired entries once in this many calls, so
// the bucket stays about as large as the assertions of the last few
// minutes without a scan on every token request.
const jtiPurgeEvery = 64

// UseJTI implements AuthStore.
func (s *Bolt) UseJTI(ctx context.Context, issuer, jti string, exp, now time.Time) (bool, error) {
	key := make([]byte, 0, len(issuer)+1+len(jti))
	key = append(append(append(key, issuer...), 0), jti...)
	purge := s.jtiCalls.Add(1)%jtiPurgeEvery == 0
	nowMS := uint64(now.UnixMilli())
	var fresh bool
	err := s.authUpdate(ctx, func(btx *bolt.Tx) error {
		fresh = false // fn may run again after a failed batch
		b, err := authBucket(btx, bucketAuthJTI, true)
		if err != nil {
			return err
		}
		if v := b.Get(key); len(v) == 8 && binary.BigEndian.Uint64(v) >= nowMS {
			return nil
		}
		if purge {
			// Collect first: deleting under a live cursor skips keys.
			var stale [][]byte
			_ = b.ForEach(func(k, v []byte) error {
				if len(v) != 8 || binary.BigEndian.Uint64(v) < nowMS {
					stale = append(stale, bytes.Clone(k))
				}
				return nil
			})
			for _, k := range stale {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		fresh = true
		return b.Put(key, u64(uint64(exp.UnixMilli())))
	})
	return fresh, err
}

// forEachCopy visits b (nil: nothing) with copies of its keys and values:
// bbolt's bytes die with the transaction.
func forEachCopy(b *bolt.Bucket, fn func(string, []byte) error) error {
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), bytes.Clone(v)) })
}
