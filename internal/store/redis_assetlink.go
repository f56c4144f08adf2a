package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// assetLinkKey is the key of one asset link: in the app's hash tag, one key per asset.
func assetLinkKey(app string, id int64) string {
	return appKey(app, "asset_link:"+strconv.FormatInt(id, 10))
}

// PutAssetLink stores a link with SET PXAT its expiry, so Redis deletes it then (see
// [AssetLinks]).
func (r *Redis) PutAssetLink(ctx context.Context, app string, id int64, url string, expires time.Time) error {
	val, err := encodeAssetLink(app, id, url, expires, now())
	if err != nil {
		return err
	}
	if err := r.setAt(ctx, assetLinkKey(app, id), val, expires); err != nil {
		return r.fail(ctx, "put asset link", err)
	}
	return nil
}

// GetAssetLink returns a stored link (GET) unless it expired (see [AssetLinks]).
func (r *Redis) GetAssetLink(ctx context.Context, app string, id int64) (string, time.Time, bool, error) {
	if err := checkAssetID("get asset link", app, id); err != nil {
		return "", time.Time{}, false, err
	}
	raw, err := r.rdb.Get(ctx, assetLinkKey(app, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, r.fail(ctx, "get asset link", err)
	}
	return decodeAssetLink(raw, now())
}
