package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/channel"
)

// DeletePendingEntry removes the one promotion of (ch, ref) waiting for commit, leaving the
// commit's other entries alone; an entry that does not exist is no error.
func (b *Bolt) DeletePendingEntry(ctx context.Context, app, commit, ch, ref string) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("delete pending entry: %w", err)
	}
	return b.update(ctx, fmt.Sprintf("delete pending %s@%s %s %s", app, commit, ch, ref), func(tx *bolt.Tx) error {
		pb := appSub(tx, app, bPending)
		if pb == nil || commit == "" {
			return errNoWrite
		}
		key := append(pendingPrefix(commit), pendingField(channel.Pending{Channel: ch, Ref: ref})...)
		return pb.Delete(key)
	})
}
