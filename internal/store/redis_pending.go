package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/channel"
)

// deletePendingEntryScript removes one field of a pending hash, and the hash itself once
// only its sequence counter is left.
var deletePendingEntryScript = redis.NewScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  redis.call('DEL', KEYS[1])
end
return 0
`)

// DeletePendingEntry removes the one promotion of (ch, ref) waiting for commit (HDEL of its
// field), leaving the commit's other entries alone; an entry that does not exist is no error.
func (r *Redis) DeletePendingEntry(ctx context.Context, app, commit, ch, ref string) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("delete pending entry: %w", err)
	}
	if commit == "" {
		return nil
	}
	err := deletePendingEntryScript.Run(ctx, r.rdb, []string{pendingKey(app, commit)},
		pendingField(channel.Pending{Channel: ch, Ref: ref}), pendingSeqField).Err()
	if err != nil {
		return r.fail(ctx, fmt.Sprintf("delete pending %s@%s %s %s", app, commit, ch, ref), err)
	}
	return nil
}
