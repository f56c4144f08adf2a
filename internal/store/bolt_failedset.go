package store

import (
	"bytes"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// LocalLookups reports true: FailedVersions answers from memory or one read transaction
// of the local file, never waiting on a network, so callers need not bound it with a
// deadline.
func (b *Bolt) LocalLookups() bool { return true }

// failedSet is the embedded store's in-memory record of which devices of each app may
// have failed versions, so that FailedVersions answers the great majority of devices,
// those that never reported update_fail, without a read transaction.
//
// It is a superset of the devices with failed sets in the file, never a subset: a device
// is added inside the write transaction that records its failure (before that
// transaction commits and before RecordStats returns), and devices are taken out only by
// a rebuild made inside the sweeper's write transaction, which holds bbolt's single
// writer lock, so no failure can be recorded between reading the file and swapping the
// set. Clearing or evicting a device leaves it in the set until the next sweep; that
// costs such a device a read transaction per lookup, never a wrong answer. The file is
// opened by one process at a time, so the set is exact for every caller.
type failedSet struct {
	mu   sync.RWMutex
	apps map[string]map[string]struct{}
}

// mayHave reports whether device of app may have failed versions.
func (f *failedSet) mayHave(app, device string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.apps[app][device]
	return ok
}

// add records that device of app has failed versions.
func (f *failedSet) add(app, device string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	devs := f.apps[app]
	if devs == nil {
		devs = map[string]struct{}{}
		f.apps[app] = devs
	}
	devs[device] = struct{}{}
}

// load replaces the set by the devices with failed records in tx. Call it in a
// transaction no failure can be recorded beside: opening the file, or a write transaction.
func (f *failedSet) load(tx *bolt.Tx) error {
	apps := map[string]map[string]struct{}{}
	err := tx.Bucket(bApps).ForEachBucket(func(app []byte) error {
		failed := tx.Bucket(bApps).Bucket(app).Bucket(bFailed)
		if failed == nil {
			return nil
		}
		var devs map[string]struct{}
		var last []byte
		return failed.ForEach(func(k, _ []byte) error {
			// Keys are <device>\x00<version>; one device's keys are adjacent.
			i := bytes.IndexByte(k, 0)
			if i < 0 || bytes.Equal(k[:i], last) {
				return nil
			}
			last = bytes.Clone(k[:i])
			if devs == nil {
				devs = map[string]struct{}{}
				apps[string(app)] = devs
			}
			devs[string(last)] = struct{}{}
			return nil
		})
	})
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.apps = apps
	f.mu.Unlock()
	return nil
}
