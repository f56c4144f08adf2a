package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the asset links (see doc.go). asset_links' sequence is the number of links,
// so PutAssetLink knows when the bound is reached without counting.
var (
	bAssetLinks   = []byte("asset_links")
	bAssetLinkAge = []byte("asset_link_age")
)

// assetLinkID is the key of a link in asset_links: <app>\x00<asset id, 8 bytes BE>.
func assetLinkID(app string, id int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(app), 0), uint64(id))
}

// assetLinkAge is a link's key in asset_link_age: <expiry, 8 bytes BE unix ns><link key>,
// so the links that expire first come first.
func assetLinkAge(expires time.Time, key []byte) []byte { return append(expiry(expires), key...) }

// PutAssetLink stores a link, replacing the asset's earlier one. In the same transaction
// it deletes the links that expired and, when [BoltOptions].MaxAssetLinks are stored, the
// ones that expire first (see [AssetLinks]).
func (b *Bolt) PutAssetLink(ctx context.Context, app string, id int64, url string, expires time.Time) error {
	t := now()
	val, err := encodeAssetLink(app, id, url, expires, t)
	if err != nil {
		return err
	}
	key := assetLinkID(app, id)
	return b.update(ctx, fmt.Sprintf("put asset link %s/%d", app, id), func(tx *bolt.Tx) error {
		links, age := tx.Bucket(bAssetLinks), tx.Bucket(bAssetLinkAge)
		n := links.Sequence()
		if gone, err := deleteAssetLink(links, age, key, links.Get(key)); err != nil {
			return err
		} else if gone {
			n = max(n, 1) - 1
		}
		// Expired links first, then the soonest to expire while the bound is reached.
		for k, _ := age.Cursor().First(); k != nil && (expired(k[:8], t) || n >= uint64(b.opts.MaxAssetLinks)); k, _ = age.Cursor().First() {
			if err := evictAssetLink(links, age, k, &n); err != nil {
				return err
			}
		}
		if err := links.Put(key, val); err != nil {
			return err
		}
		if err := age.Put(assetLinkAge(expires, key), nil); err != nil {
			return err
		}
		return links.SetSequence(n + 1)
	})
}

// deleteAssetLink deletes the link stored under key with value raw (nil: none) and its
// index entry, and reports whether there was a link.
func deleteAssetLink(links, age *bolt.Bucket, key, raw []byte) (bool, error) {
	if raw == nil {
		return false, nil
	}
	var r assetLinkRecord
	if err := json.Unmarshal(raw, &r); err == nil {
		if err := age.Delete(assetLinkAge(r.Expires, key)); err != nil {
			return false, err
		}
	}
	return true, links.Delete(key)
}

// evictAssetLink deletes the link of index entry k (the first of asset_link_age) and the
// entry itself, and counts the link out of *n.
func evictAssetLink(links, age *bolt.Bucket, k []byte, n *uint64) error {
	k = bytes.Clone(k)
	lk := k[8:]
	gone, err := deleteAssetLink(links, age, lk, links.Get(lk))
	if err != nil {
		return err
	}
	if gone {
		*n = max(*n, 1) - 1
	}
	return age.Delete(k) // in case the entry was not the link's own
}

// GetAssetLink returns a stored link unless it expired (see [AssetLinks]).
func (b *Bolt) GetAssetLink(ctx context.Context, app string, id int64) (string, time.Time, bool, error) {
	if err := checkAssetID("get asset link", app, id); err != nil {
		return "", time.Time{}, false, err
	}
	var raw []byte
	err := b.view(ctx, fmt.Sprintf("get asset link %s/%d", app, id), func(tx *bolt.Tx) error {
		raw = bytes.Clone(tx.Bucket(bAssetLinks).Get(assetLinkID(app, id)))
		return nil
	})
	if err != nil || raw == nil {
		return "", time.Time{}, false, err
	}
	return decodeAssetLink(raw, now())
}

// sweepAssetLinks deletes the links expired at t and returns how many it deleted.
func sweepAssetLinks(tx *bolt.Tx, t time.Time) (int, error) {
	links, age := tx.Bucket(bAssetLinks), tx.Bucket(bAssetLinkAge)
	n, deleted := links.Sequence(), 0
	for k, _ := age.Cursor().First(); k != nil && expired(k[:8], t); k, _ = age.Cursor().First() {
		if err := evictAssetLink(links, age, k, &n); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, links.SetSequence(n)
}
