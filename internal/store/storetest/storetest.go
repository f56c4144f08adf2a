// Package storetest is the conformance suite every Ferry store passes: the embedded bbolt
// store and the Redis store run the same checks of the store contract, internal/store's
// Store interface, whose method set [Store] repeats (internal/store's own tests import this
// package, so it cannot import internal/store).
//
// A store's test calls:
//
//	storetest.Run(t, func(t *testing.T) storetest.Store { return openMyStore(t) })
//	storetest.RunShared(t, open)                // backends shared by several instances
//	storetest.RunDurability(t, open, restart)   // close, restart the backend, reopen
//	storetest.AccessInvalid(t, s, store.ErrInvalid) // bad arguments wrap the store's error
//
// Every check uses its own random app id, token ids, session hashes and login states, so
// open may hand out instances of one shared backend (one redis-server for the whole suite)
// as well as a fresh backend per call. (ListTokens checks look only at their own tokens.)
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// Store has the method set of [github.com/ferryhq/ferry/internal/store.Store], whose
// declaration documents each method's contract, which this suite checks. internal/store's
// tests assert that the two interfaces are identical.
type Store interface {
	PutBundle(ctx context.Context, b *channel.Bundle, audit *channel.AuditEntry) (stored *channel.Bundle, created bool, err error)
	GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error)
	GetBundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error)
	ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error)
	PageBundles(ctx context.Context, app, cursor string, limit int) (bundles []*channel.Bundle, next string, err error)
	BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error)
	GetState(ctx context.Context, app, ch string) (*channel.State, error)
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error)
	AppendAudit(ctx context.Context, e channel.AuditEntry) error
	ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error)
	AddPending(ctx context.Context, app, commit string, p channel.Pending) error
	ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error)
	DeletePendingEntry(ctx context.Context, app, commit, ch, ref string) error
	SeenDelivery(ctx context.Context, id string, ttl time.Duration) (seen bool, err error)
	ForgetDelivery(ctx context.Context, id string) error
	MarkDelivery(ctx context.Context, id string, ttl time.Duration) error
	RecordStats(ctx context.Context, app string, events []channel.StatEvent) error
	Stats(ctx context.Context, app string) ([]channel.VersionStats, error)
	FailedVersions(ctx context.Context, app, device string) ([]string, error)
	ClearFailedVersions(ctx context.Context, app, device string, audit *channel.AuditEntry) (cleared []string, err error)
	PutToken(ctx context.Context, t *access.Token) error
	GetToken(ctx context.Context, id string) (*access.Token, error)
	ListTokens(ctx context.Context) ([]*access.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) (*access.Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	PutSession(ctx context.Context, s *access.Session) error
	GetSession(ctx context.Context, idHash string) (*access.Session, error)
	TouchSession(ctx context.Context, idHash string, at time.Time) error
	DeleteSession(ctx context.Context, idHash string) error
	PutLogin(ctx context.Context, l *access.Login) error
	TakeLogin(ctx context.Context, state string) (*access.Login, error)
	AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error
	Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error)
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	PutAssetLink(ctx context.Context, app string, assetID int64, url string, expires time.Time) error
	GetAssetLink(ctx context.Context, app string, assetID int64) (url string, expires time.Time, ok bool, err error)
	Subscribe(ctx context.Context) <-chan string
	Ping(ctx context.Context) error
	Close() error
}

// Writers is the number of concurrent writers in the atomicity checks.
const Writers = 50

// wait bounds every wait for a notification.
const wait = 10 * time.Second

// Run checks every method's contract. open is called once per check and must return a
// usable store; it should register its own cleanup (the suite may also Close it, so Close
// must tolerate a second call).
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"PutBundle", testPutBundle},
		{"PutBundleConcurrent", testPutBundleConcurrent},
		{"PutBundleInvalid", testPutBundleInvalid},
		{"PutBundleAudit", testPutBundleAudit},
		{"PutBundleAuditConcurrent", testPutBundleAuditConcurrent},
		{"GetBundle", testGetBundle},
		{"GetBundles", testGetBundles},
		{"ListBundles", testListBundles},
		{"PageBundles", testPageBundles},
		{"PageBundlesDuringRegistrations", testPageBundlesDuringRegistrations},
		{"PageBundlesInvalid", func(t *testing.T, s Store) { PageBundlesInvalid(t, s, nil) }},
		{"BundleByCommit", testBundleByCommit},
		{"GetStateDefault", testGetStateDefault},
		{"UpdateState", testUpdateState},
		{"UpdateStateNative", testUpdateStateNative},
		{"UpdateStateNoChange", testUpdateStateNoChange},
		{"UpdateStateError", testUpdateStateError},
		{"UpdateStateConcurrent", testUpdateStateConcurrent},
		{"ListStates", testListStates},
		{"Audit", testAudit},
		{"Pending", testPending},
		{"SeenDelivery", testSeenDelivery},
		{"SeenDeliveryConcurrent", testSeenDeliveryConcurrent},
		{"ForgetDelivery", testForgetDelivery},
		{"MarkDelivery", testMarkDelivery},
		{"Stats", testStats},
		{"StatsManyDevices", testStatsManyDevices},
		{"FailedVersions", testFailedVersions},
		{"ClearFailedVersions", testClearFailedVersions},
		{"ClearFailedVersionsConcurrent", testClearFailedVersionsConcurrent},
		{"ClearFailedVersionsInvalid", testClearFailedVersionsInvalid},
		{"Subscribe", testSubscribe},
		{"Ping", testPing},
		{"Tokens", testTokens},
		{"RevokeToken", testRevokeToken},
		{"TouchToken", testTouchToken},
		{"TokensConcurrent", testTokensConcurrent},
		{"Sessions", testSessions},
		{"SessionExpiry", testSessionExpiry},
		{"TouchSession", testTouchSession},
		{"TouchSessionConcurrent", testTouchSessionConcurrent},
		{"Logins", testLogins},
		{"LoginExpiry", testLoginExpiry},
		{"TakeLoginConcurrent", testTakeLoginConcurrent},
		{"AccessNotify", testAccessNotify},
		{"AccessInvalid", testAccessInvalid},
		{"Series", testSeries},
		{"SeriesRetention", testSeriesRetention},
		{"SeriesConcurrent", testSeriesConcurrent},
		{"SeriesInvalid", testSeriesInvalid},
		{"Lease", testLease},
		{"LeaseConcurrent", testLeaseConcurrent},
		{"AssetLinks", testAssetLinks},
		{"AssetLinkExpiry", testAssetLinkExpiry},
		{"AssetLinkInvalid", testAssetLinkInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// NewApp returns a random app id, so checks sharing a backend do not see each other.
func NewApp(t testing.TB) string {
	t.Helper()
	return "com.ferry.test." + randHex(t)
}

func randHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Bundle returns a plausible bundle record of app at version, built from commit.
func Bundle(app, version, commit string) *channel.Bundle {
	return &channel.Bundle{
		AppID:      app,
		Version:    version,
		URL:        "https://github.com/acme/mobile/releases/download/v" + version + "/web.zip",
		Checksum:   fmt.Sprintf("%064x", len(version)*7919+int(version[len(version)-1])),
		SHA256:     fmt.Sprintf("%064x", len(version)),
		Size:       123456,
		SessionKey: "aXY=:a2V5",
		KeyID:      "MIIBCgKCAQEAwxyzabcd",
		Commit:     commit,
		Ref:        "refs/tags/v" + version,
		Native:     ">=2.0.0 <3.0.0",
		Manifest: []channel.ManifestEntry{
			{FileName: "index.html.br", FileHash: "ab", DownloadURL: "https://cdn.example/index.html.br", Size: 10},
		},
		Repository: "acme/mobile",
	}
}

var ignoreCreated = cmpopts.IgnoreFields(channel.Bundle{}, "CreatedAt")

func put(t *testing.T, s Store, b *channel.Bundle) *channel.Bundle {
	t.Helper()
	got, created, err := s.PutBundle(t.Context(), b, nil)
	if err != nil {
		t.Fatalf("PutBundle(%s@%s): %v", b.AppID, b.Version, err)
	}
	if !created {
		t.Fatalf("PutBundle(%s@%s) created = false, want true", b.AppID, b.Version)
	}
	return got
}

func testPutBundle(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	b := Bundle(app, "1.0.0", "c1")
	before := time.Now()
	got, created, err := s.PutBundle(ctx, b, nil)
	if err != nil || !created {
		t.Fatalf("PutBundle = created %v, %v; want true, nil", created, err)
	}
	if diff := cmp.Diff(b, got, ignoreCreated); diff != "" {
		t.Errorf("PutBundle stored (-want +got):\n%s", diff)
	}
	if got.CreatedAt.Before(before.Add(-time.Second)) || got.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt = %v, want about %v", got.CreatedAt, before)
	}
	again, created, err := s.PutBundle(ctx, Bundle(app, "1.0.0", "c1"), nil)
	if err != nil || created {
		t.Fatalf("PutBundle again = created %v, %v; want false, nil", created, err)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("idempotent PutBundle returned (-want +got):\n%s", diff)
	}
	other := Bundle(app, "1.0.0", "c2")
	other.Checksum = fmt.Sprintf("%064x", 42)
	other.URL = "https://evil.example/web.zip"
	if _, _, err := s.PutBundle(ctx, other, nil); !errors.Is(err, channel.ErrConflict) {
		t.Fatalf("PutBundle with another checksum: err = %v, want ErrConflict", err)
	}
	stored, err := s.GetBundle(ctx, app, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, stored); diff != "" {
		t.Errorf("conflict changed the bundle (-want +got):\n%s", diff)
	}
	if _, err := s.BundleByCommit(ctx, app, "c2"); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("conflict indexed its commit: BundleByCommit(c2) err = %v, want ErrNotFound", err)
	}
	list, err := s.ListBundles(ctx, app, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("ListBundles after idempotent put and conflict has %d bundles, want 1", len(list))
	}
}

func testPutBundleConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	var created, conflicts int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range Writers {
		wg.Go(func() {
			b := Bundle(app, "2.0.0", "c")
			if i%2 == 1 {
				b.Checksum = fmt.Sprintf("%064x", 1000+i)
			}
			_, c, err := s.PutBundle(ctx, b, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, channel.ErrConflict):
				conflicts++
			case err != nil:
				t.Errorf("PutBundle: %v", err)
			case c:
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d concurrent PutBundle calls created %d bundles, want 1", Writers, created)
	}
	if conflicts < Writers/2-1 {
		t.Errorf("conflicts = %d, want at least %d", conflicts, Writers/2-1)
	}
	list, err := s.ListBundles(ctx, app, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("ListBundles has %d entries, want 1", len(list))
	}
}

func testPutBundleInvalid(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	for _, b := range []*channel.Bundle{
		nil,
		Bundle("", "1.0.0", "c"),
		{AppID: app, Checksum: "x"},
		Bundle(app, "bad\nversion", "c"),
	} {
		if _, created, err := s.PutBundle(ctx, b, nil); err == nil || created {
			t.Errorf("PutBundle(%+v) = created %v, err %v; want an error", b, created, err)
		}
	}
	if list, err := s.ListBundles(ctx, app, 10); err != nil || len(list) != 0 {
		t.Errorf("ListBundles after invalid puts = %d bundles, %v; want 0, nil", len(list), err)
	}
}

// registerEntry is the audit entry a registration of version stores with its bundle.
func registerEntry(app, version string) *channel.AuditEntry {
	return &channel.AuditEntry{App: app, Channel: "production", Action: "register", Version: version, Cause: "registration acme/mobile@abc"}
}

// auditOf returns app's audit entries with the given action and version.
func auditOf(t *testing.T, s Store, app, action, version string) []channel.AuditEntry {
	t.Helper()
	all, err := s.ListAudit(t.Context(), app, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(e channel.AuditEntry) bool { return e.Action != action || e.Version != version })
}

func testPutBundleAudit(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	entry := registerEntry(app, "1.0.0")
	got, created, err := s.PutBundle(ctx, Bundle(app, "1.0.0", "c1"), entry)
	if err != nil || !created {
		t.Fatalf("PutBundle with an audit entry = created %v, %v; want true, nil", created, err)
	}
	want := *entry
	want.Time = got.CreatedAt // a zero Time takes the bundle's CreatedAt
	if diff := cmp.Diff([]channel.AuditEntry{want}, auditOf(t, s, app, "register", "1.0.0")); diff != "" {
		t.Errorf("audit after creation (-want +got):\n%s", diff)
	}
	if !cmp.Equal(*entry, *registerEntry(app, "1.0.0")) {
		t.Errorf("PutBundle changed the caller's audit entry: %+v", entry)
	}

	// The idempotent repeat (a client retrying after a lost answer) and a conflict append
	// nothing.
	if _, created, err := s.PutBundle(ctx, Bundle(app, "1.0.0", "c1"), registerEntry(app, "1.0.0")); err != nil || created {
		t.Fatalf("PutBundle again = created %v, %v; want false, nil", created, err)
	}
	other := Bundle(app, "1.0.0", "c2")
	other.Checksum = fmt.Sprintf("%064x", 42)
	if _, _, err := s.PutBundle(ctx, other, registerEntry(app, "1.0.0")); !errors.Is(err, channel.ErrConflict) {
		t.Fatalf("PutBundle with another checksum: err = %v, want ErrConflict", err)
	}
	if got := auditOf(t, s, app, "register", "1.0.0"); len(got) != 1 {
		t.Errorf("audit after an idempotent repeat and a conflict has %d register entries, want 1: %+v", len(got), got)
	}

	// An explicit Time is kept; nil appends nothing.
	at := time.Date(2026, 11, 24, 12, 0, 0, 5, time.UTC)
	timed := registerEntry("", "1.1.0") // App defaults to the bundle's
	timed.Time = at
	put1, created, err := s.PutBundle(ctx, Bundle(app, "1.1.0", "c3"), timed)
	if err != nil || !created {
		t.Fatalf("PutBundle 1.1.0 = created %v, %v", created, err)
	}
	wantTimed := *timed
	wantTimed.App = app
	if diff := cmp.Diff([]channel.AuditEntry{wantTimed}, auditOf(t, s, app, "register", "1.1.0")); diff != "" {
		t.Errorf("audit entry with its own time (-want +got):\n%s", diff)
	}
	if put1.CreatedAt.Equal(at) {
		t.Errorf("the audit entry's time replaced the bundle's CreatedAt")
	}
	put(t, s, Bundle(app, "1.2.0", "c4"))
	if all, err := s.ListAudit(ctx, app, 100); err != nil || len(all) != 2 {
		t.Errorf("ListAudit after a PutBundle without an entry = %d entries, %v; want 2", len(all), err)
	}

	// An entry of another app is refused and nothing is stored.
	if _, created, err := s.PutBundle(ctx, Bundle(app, "1.3.0", "c5"), registerEntry(NewApp(t), "1.3.0")); err == nil || created {
		t.Errorf("PutBundle with another app's audit entry = created %v, err %v; want an error", created, err)
	}
	if _, err := s.GetBundle(ctx, app, "1.3.0"); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("refused PutBundle stored the bundle: GetBundle err = %v", err)
	}
}

func testPutBundleAuditConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	var wg sync.WaitGroup
	var created atomic.Int32
	for i := range Writers {
		wg.Go(func() {
			b := Bundle(app, "2.0.0", "c")
			if i%2 == 1 {
				b.Checksum = fmt.Sprintf("%064x", 1000+i)
			}
			_, c, err := s.PutBundle(ctx, b, registerEntry(app, "2.0.0"))
			if err != nil && !errors.Is(err, channel.ErrConflict) {
				t.Errorf("PutBundle: %v", err)
			}
			if c {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Errorf("%d concurrent PutBundle calls created %d bundles, want 1", Writers, created.Load())
	}
	if got := auditOf(t, s, app, "register", "2.0.0"); len(got) != 1 {
		t.Errorf("%d concurrent registrations appended %d register entries, want 1", Writers, len(got))
	}
}

func testGetBundle(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	want := put(t, s, Bundle(app, "1.2.3", "abc"))
	got, err := s.GetBundle(ctx, app, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetBundle (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ app, version string }{{app, "9.9.9"}, {NewApp(t), "1.2.3"}, {app, ""}} {
		if _, err := s.GetBundle(ctx, tc.app, tc.version); !errors.Is(err, channel.ErrNotFound) {
			t.Errorf("GetBundle(%q, %q) err = %v, want ErrNotFound", tc.app, tc.version, err)
		}
	}
}

func testGetBundles(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	want := map[string]*channel.Bundle{}
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		want[v] = put(t, s, Bundle(app, v, "c"+v))
	}
	delete(want, "1.1.0")
	got, err := s.GetBundles(ctx, app, []string{"1.0.0", "2.0.0", "3.0.0", ""})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetBundles (-want +got):\n%s", diff)
	}
	got, err = s.GetBundles(ctx, NewApp(t), []string{"1.0.0"})
	if err != nil || len(got) != 0 {
		t.Errorf("GetBundles of an unknown app = %v, %v; want empty, nil", got, err)
	}
	got, err = s.GetBundles(ctx, app, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("GetBundles(nil) = %v, %v; want empty, nil", got, err)
	}
}

func testListBundles(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	// Registration order, not version order, decides.
	versions := []string{"1.0.0", "3.0.0", "2.0.0", "2.1.0", "1.5.0"}
	var stored []*channel.Bundle
	for _, v := range versions {
		stored = append(stored, put(t, s, Bundle(app, v, "c")))
	}
	slices.Reverse(stored)
	for _, limit := range []int{1, 3, 5, 50} {
		got, err := s.ListBundles(ctx, app, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := stored[:min(limit, len(stored))]
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListBundles(limit %d) (-want +got):\n%s", limit, diff)
		}
	}
	if got, err := s.ListBundles(ctx, NewApp(t), 10); err != nil || len(got) != 0 {
		t.Errorf("ListBundles of an unknown app = %v, %v; want empty, nil", got, err)
	}
}

// pageAll reads every page of app's bundles with limit, checking each page's size, and
// returns the bundles and the cursors it was given.
func pageAll(t *testing.T, s Store, app string, limit int) ([]*channel.Bundle, []string) {
	t.Helper()
	var all []*channel.Bundle
	var cursors []string
	cursor := ""
	for range 1000 {
		page, next, err := s.PageBundles(t.Context(), app, cursor, limit)
		if err != nil {
			t.Fatalf("PageBundles(%q, limit %d): %v", cursor, limit, err)
		}
		if len(page) > limit || (next != "" && len(page) != limit) {
			t.Fatalf("PageBundles(%q, limit %d) = %d bundles with next %q: want a full page before the last", cursor, limit, len(page), next)
		}
		all = append(all, page...)
		if next == "" {
			return all, cursors
		}
		cursors = append(cursors, next)
		cursor = next
	}
	t.Fatalf("PageBundles(limit %d) never ended", limit)
	return nil, nil
}

func testPageBundles(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	page, next, err := s.PageBundles(ctx, app, "", 10)
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("PageBundles of an app without bundles = %v, %q, %v; want empty, \"\", nil", page, next, err)
	}
	// Registration order, not version order, decides.
	var stored []*channel.Bundle
	for _, v := range []string{"1.0.0", "3.0.0", "2.0.0", "2.1.0", "1.5.0", "0.9.0", "4.0.0"} {
		stored = append(stored, put(t, s, Bundle(app, v, "c"+v)))
	}
	for _, limit := range []int{1, 2, 3, 6, 7, 8, 100} {
		got, cursors := pageAll(t, s, app, limit)
		if diff := cmp.Diff(stored, got); diff != "" {
			t.Errorf("pages of limit %d, concatenated (-want oldest first +got):\n%s", limit, diff)
		}
		if want := (len(stored) - 1) / limit; len(cursors) != want {
			t.Errorf("limit %d: %d next cursors, want %d (none after the last bundle)", limit, len(cursors), want)
		}
		// A cursor names the same page whenever it is used again.
		for i, c := range cursors {
			again, _, err := s.PageBundles(ctx, app, c, limit)
			if err != nil {
				t.Fatal(err)
			}
			end := min((i+2)*limit, len(stored))
			if diff := cmp.Diff(stored[(i+1)*limit:end], again); diff != "" {
				t.Errorf("limit %d: cursor %q again (-want +got):\n%s", limit, c, diff)
			}
		}
	}
	// One app's pages hold only its own bundles.
	other := NewApp(t)
	put(t, s, Bundle(other, "9.9.9", "x"))
	if got, _ := pageAll(t, s, other, 3); len(got) != 1 || got[0].AppID != other {
		t.Errorf("pages of another app = %v, want its one bundle", got)
	}
}

// testPageBundlesDuringRegistrations pages while bundles are registered concurrently:
// every bundle registered before paging started is returned exactly once, and so is each
// bundle registered meanwhile that paging reached.
func testPageBundlesDuringRegistrations(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	before := map[string]bool{}
	for i := range 20 {
		v := fmt.Sprintf("1.0.%d", i)
		put(t, s, Bundle(app, v, "c"))
		before[v] = true
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, _, err := s.PutBundle(ctx, Bundle(app, fmt.Sprintf("2.0.%d", i), "d"), nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := map[string]int{}
	cursor := ""
	for {
		page, next, err := s.PageBundles(ctx, app, cursor, 3)
		if err != nil {
			close(done)
			wg.Wait()
			t.Fatal(err)
		}
		for _, b := range page {
			seen[b.Version]++
		}
		if next == "" || len(seen) > 200 {
			break
		}
		cursor = next
	}
	close(done)
	wg.Wait()
	for v := range before {
		if seen[v] != 1 {
			t.Errorf("bundle %s registered before paging was returned %d times, want once", v, seen[v])
		}
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("bundle %s returned %d times, want once", v, n)
		}
	}
}

// PageBundlesInvalid checks that PageBundles refuses cursors the store cannot have
// returned and limits out of range with an error wrapping want (any error when want is
// nil) that names the cursor or the limit.
func PageBundlesInvalid(t *testing.T, s Store, want error) {
	t.Helper()
	ctx := t.Context()
	app := NewApp(t)
	for _, v := range []string{"1.0.0", "1.0.1", "1.0.2"} {
		put(t, s, Bundle(app, v, "c"))
	}
	_, good, err := s.PageBundles(ctx, app, "", 1)
	if err != nil || good == "" {
		t.Fatalf("first page = %q, %v; want a next cursor", good, err)
	}
	for _, cursor := range []string{"abc", "1", "r", "r0", "r-1", "r01", "r+1", " r1", "r1 ", "r1.5", "r99999999999999999999", "r4", "r1000", good + "x"} {
		page, next, err := s.PageBundles(ctx, app, cursor, 2)
		if err == nil || (want != nil && !errors.Is(err, want)) || !strings.Contains(err.Error(), "cursor") {
			t.Errorf("PageBundles(cursor %q) = %d bundles, %q, %v; want an error about the cursor wrapping %v", cursor, len(page), next, err, want)
		}
	}
	for _, limit := range []int{0, -1, 1 << 30} {
		if _, _, err := s.PageBundles(ctx, app, "", limit); err == nil || (want != nil && !errors.Is(err, want)) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("PageBundles(limit %d) = %v, want an error about the limit wrapping %v", limit, err, want)
		}
	}
	for _, bad := range []string{"", "a{b}", "a\x00b"} {
		if _, _, err := s.PageBundles(ctx, bad, "", 10); err == nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("PageBundles(app %q) = %v, want an error wrapping %v", bad, err, want)
		}
	}
	// Nothing was changed by the refusals.
	if got, _ := pageAll(t, s, app, 10); len(got) != 3 {
		t.Errorf("after refused pages the app has %d bundles, want 3", len(got))
	}
}

func testBundleByCommit(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	put(t, s, Bundle(app, "1.0.0", "aaa"))
	b2 := put(t, s, Bundle(app, "1.0.1", "bbb"))
	b3 := put(t, s, Bundle(app, "1.0.2", "aaa"))
	for commit, want := range map[string]*channel.Bundle{"aaa": b3, "bbb": b2} {
		got, err := s.BundleByCommit(ctx, app, commit)
		if err != nil {
			t.Fatalf("BundleByCommit(%q): %v", commit, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("BundleByCommit(%q) (-want +got):\n%s", commit, diff)
		}
	}
	if _, err := s.BundleByCommit(ctx, app, "ccc"); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("BundleByCommit(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.BundleByCommit(ctx, NewApp(t), "aaa"); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("BundleByCommit(unknown app) err = %v, want ErrNotFound", err)
	}
}

func testGetStateDefault(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	got, err := s.GetState(ctx, app, "production")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&channel.State{App: app, Channel: "production"}, got); diff != "" {
		t.Errorf("GetState of a new channel (-want +got):\n%s", diff)
	}
	states, err := s.ListStates(ctx, app)
	if err != nil || len(states) != 0 {
		t.Errorf("ListStates of a new app = %v, %v; want empty, nil", states, err)
	}
}

// promote is an UpdateState fn that serves version and pushes the old one to History.
func promote(version, cause string) func(*channel.State) (*channel.AuditEntry, error) {
	return func(st *channel.State) (*channel.AuditEntry, error) {
		from := st.Version
		if from != "" {
			st.History = append([]string{from}, st.History...)
		}
		st.Version = version
		return &channel.AuditEntry{Action: "promote", Version: version, From: from, Cause: cause}, nil
	}
}

func testUpdateState(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	before := time.Now().Add(-time.Second)
	got, err := s.UpdateState(ctx, app, "production", promote("1.0.0", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != 1 || got.Version != "1.0.0" || got.App != app || got.Channel != "production" {
		t.Errorf("UpdateState = %+v, want rev 1 serving 1.0.0", got)
	}
	if got.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt = %v, want after %v", got.UpdatedAt, before)
	}
	got, err = s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
		st.Rollout = &channel.Rollout{Version: "1.1.0", Percent: 10}
		st.Policy = &channel.Policy{AllowDeviceSelfSet: true, Platforms: []string{"ios"}}
		st.App, st.Channel, st.Rev = "other", "other", 99 // the store owns these
		return &channel.AuditEntry{Action: "rollout", Version: "1.1.0", Cause: "admin"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &channel.State{
		App: app, Channel: "production", Version: "1.0.0", Rev: 2,
		Rollout: &channel.Rollout{Version: "1.1.0", Percent: 10},
		Policy:  &channel.Policy{AllowDeviceSelfSet: true, Platforms: []string{"ios"}},
	}
	opt := cmpopts.IgnoreFields(channel.State{}, "UpdatedAt")
	if diff := cmp.Diff(want, got, opt); diff != "" {
		t.Errorf("UpdateState returned (-want +got):\n%s", diff)
	}
	read, err := s.GetState(ctx, app, "production")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("GetState after UpdateState (-want +got):\n%s", diff)
	}
	audit, err := s.ListAudit(ctx, app, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantAudit := []channel.AuditEntry{
		{App: app, Channel: "production", Action: "rollout", Version: "1.1.0", Cause: "admin"},
		{App: app, Channel: "production", Action: "promote", Version: "1.0.0", Cause: "admin"},
	}
	if diff := cmp.Diff(wantAudit, audit, cmpopts.IgnoreFields(channel.AuditEntry{}, "Time")); diff != "" {
		t.Errorf("audit after two updates (-want +got):\n%s", diff)
	}
	for _, e := range audit {
		if e.Time.IsZero() {
			t.Errorf("audit entry %+v has no time", e)
		}
	}
	// History keeps the newest first and at most channel.MaxHistory entries.
	for i := range channel.MaxHistory + 5 {
		if _, err := s.UpdateState(ctx, app, "production", promote(fmt.Sprintf("2.0.%d", i), "loop")); err != nil {
			t.Fatal(err)
		}
	}
	read, err = s.GetState(ctx, app, "production")
	if err != nil {
		t.Fatal(err)
	}
	if len(read.History) > channel.MaxHistory || read.History[0] != fmt.Sprintf("2.0.%d", channel.MaxHistory+3) {
		t.Errorf("History = %v, want at most %d entries, newest first", read.History, channel.MaxHistory)
	}
}

// testUpdateStateNative round-trips the channel's native-range overrides (set at
// promotion) through UpdateState, GetState and ListStates, and their removal.
func testUpdateStateNative(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	if _, err := s.UpdateState(ctx, app, "production", promote("1.0.0", "admin")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"1.0.0": ">=2.0.0 <3.0.0 || ^4", "1.1.0": "*"}
	got, err := s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
		channel.Promote(st, "1.1.0")
		for v, r := range want {
			if _, err := channel.SetNative(st, v, r); err != nil {
				return nil, err
			}
		}
		return &channel.AuditEntry{Action: "promote", Version: "1.1.0", Cause: "admin"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.Native); diff != "" {
		t.Errorf("UpdateState returned Native (-want +got):\n%s", diff)
	}
	read, err := s.GetState(ctx, app, "production")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("GetState after setting Native (-want +got):\n%s", diff)
	}
	all, err := s.ListStates(ctx, app)
	if err != nil || len(all) != 1 {
		t.Fatalf("ListStates = %v, %v; want one state", all, err)
	}
	if diff := cmp.Diff(want, all[0].Native); diff != "" {
		t.Errorf("ListStates Native (-want +got):\n%s", diff)
	}
	// Removing every override stores none.
	if _, err := s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
		for v := range want {
			if _, err := channel.SetNative(st, v, ""); err != nil {
				return nil, err
			}
		}
		return &channel.AuditEntry{Action: "promote", Version: "1.1.0", Cause: "admin"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if read, err = s.GetState(ctx, app, "production"); err != nil || read.Native != nil {
		t.Errorf("GetState after removing the overrides: Native = %v, %v; want none", read.Native, err)
	}
}

func testUpdateStateNoChange(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	if _, err := s.UpdateState(ctx, app, "beta", promote("1.0.0", "x")); err != nil {
		t.Fatal(err)
	}
	got, err := s.UpdateState(ctx, app, "beta", func(st *channel.State) (*channel.AuditEntry, error) {
		st.Version = "scribbled on the copy"
		st.History = append(st.History, "x")
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "1.0.0" || got.Rev != 1 || len(got.History) != 0 {
		t.Errorf("UpdateState with no change = %+v, want the stored rev 1 state", got)
	}
	read, err := s.GetState(ctx, app, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("state after a no-change update (-want +got):\n%s", diff)
	}
	if audit, _ := s.ListAudit(ctx, app, 10); len(audit) != 1 {
		t.Errorf("audit has %d entries, want 1", len(audit))
	}
}

func testUpdateStateError(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	notes := s.Subscribe(sub)
	boom := errors.New("refused by policy")
	_, err := s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
		st.Version = "6.6.6"
		return &channel.AuditEntry{Action: "promote"}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateState err = %v, want the fn's error", err)
	}
	st, err := s.GetState(ctx, app, "production")
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "" || st.Rev != 0 {
		t.Errorf("fn error wrote the state: %+v", st)
	}
	if states, _ := s.ListStates(ctx, app); len(states) != 0 {
		t.Errorf("fn error created %d states", len(states))
	}
	if audit, _ := s.ListAudit(ctx, app, 10); len(audit) != 0 {
		t.Errorf("fn error wrote %d audit entries", len(audit))
	}
	select {
	case got := <-notes:
		if got == app {
			t.Errorf("fn error notified subscribers")
		}
	case <-time.After(200 * time.Millisecond):
	}
}

// testUpdateStateConcurrent runs Writers read-modify-write updates at once: each turns
// Version n into n+1. A lost update would leave Version below Writers.
func testUpdateStateConcurrent(t *testing.T, s Store) {
	ConcurrentUpdates(t, []Store{s})
}

// ConcurrentUpdates runs Writers concurrent increments of one channel spread over stores
// (instances sharing one backend) and checks that none was lost: the final Rev and Version
// equal Writers, and the audit log holds one entry per change, each from a distinct
// previous version.
func ConcurrentUpdates(t *testing.T, stores []Store) {
	t.Helper()
	ctx := t.Context()
	app := NewApp(t)
	var calls sync.Map
	var wg sync.WaitGroup
	for i := range Writers {
		s := stores[i%len(stores)]
		wg.Go(func() {
			_, err := s.UpdateState(ctx, app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
				calls.Store(i, true)
				n := 0
				if st.Version != "" {
					var err error
					if n, err = strconv.Atoi(st.Version); err != nil {
						return nil, err
					}
				}
				st.Version = strconv.Itoa(n + 1)
				return &channel.AuditEntry{Action: "promote", Version: st.Version, From: strconv.Itoa(n), Cause: "writer " + strconv.Itoa(i)}, nil
			})
			if err != nil {
				t.Errorf("UpdateState by writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	st, err := stores[0].GetState(ctx, app, "production")
	if err != nil {
		t.Fatal(err)
	}
	if st.Rev != Writers || st.Version != strconv.Itoa(Writers) {
		t.Errorf("after %d concurrent updates: Rev %d, Version %q; want %d, %q", Writers, st.Rev, st.Version, Writers, strconv.Itoa(Writers))
	}
	audit, err := stores[len(stores)-1].ListAudit(ctx, app, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != Writers {
		t.Fatalf("audit has %d entries, want %d", len(audit), Writers)
	}
	causes := map[string]bool{}
	for i, e := range audit {
		if want := strconv.Itoa(Writers - i); e.Version != want {
			t.Errorf("audit[%d].Version = %q, want %q (newest first, no gaps)", i, e.Version, want)
		}
		causes[e.Cause] = true
	}
	if len(causes) != Writers {
		t.Errorf("audit names %d distinct writers, want %d", len(causes), Writers)
	}
}

func testListStates(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	for _, ch := range []string{"production", "beta", "alpha"} {
		if _, err := s.UpdateState(ctx, app, ch, promote("1.0.0-"+ch, "admin")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateState(ctx, NewApp(t), "zeta", promote("9", "admin")); err != nil {
		t.Fatal(err)
	}
	states, err := s.ListStates(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range states {
		names = append(names, st.Channel+"="+st.Version)
		if st.App != app || st.Rev != 1 {
			t.Errorf("ListStates entry %+v, want app %s rev 1", st, app)
		}
	}
	want := []string{"alpha=1.0.0-alpha", "beta=1.0.0-beta", "production=1.0.0-production"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("ListStates (-want +got):\n%s", diff)
	}
}

func testAudit(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	at := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
	var want []channel.AuditEntry
	for i := range 5 {
		e := channel.AuditEntry{Time: at.Add(time.Duration(i) * time.Second), App: app, Action: "register", Version: fmt.Sprintf("1.0.%d", i), Cause: "registration acme/mobile@abc"}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append([]channel.AuditEntry{e}, want...)
	}
	got, err := s.ListAudit(ctx, app, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[:3], got); diff != "" {
		t.Errorf("ListAudit(3) (-want +got):\n%s", diff)
	}
	got, err = s.ListAudit(ctx, app, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListAudit(100) (-want +got):\n%s", diff)
	}
	// A zero time is filled in.
	if err := s.AppendAudit(ctx, channel.AuditEntry{App: app, Action: "pending", Cause: "webhook"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListAudit(ctx, app, 1)
	if err != nil || len(got) != 1 || got[0].Action != "pending" || got[0].Time.IsZero() {
		t.Errorf("ListAudit(1) after an entry without time = %+v, %v", got, err)
	}
	if err := s.AppendAudit(ctx, channel.AuditEntry{Action: "register"}); err == nil {
		t.Errorf("AppendAudit without an app: err = nil, want an error")
	}
	if got, err := s.ListAudit(ctx, NewApp(t), 10); err != nil || len(got) != 0 {
		t.Errorf("ListAudit of an unknown app = %v, %v", got, err)
	}
}

func testPending(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	p1 := channel.Pending{Channel: "production", Ref: "refs/tags/v1.0.0", Cause: "webhook:1", Time: at}
	p2 := channel.Pending{Channel: "beta", Ref: "refs/heads/main", Cause: "webhook:2", Time: at.Add(time.Second)}
	p1b := channel.Pending{Channel: "production", Ref: "refs/tags/v1.0.0", Cause: "webhook:3", Time: at.Add(2 * time.Second)}
	p3 := channel.Pending{Channel: "production", Ref: "refs/tags/channel/production", Cause: "webhook:4", Time: at.Add(3 * time.Second)}
	for _, p := range []channel.Pending{p1, p2} {
		if err := s.AddPending(ctx, app, "abc", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddPending(ctx, app, "other", p3); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListPending(ctx, app, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]channel.Pending{p1, p2}, got); diff != "" {
		t.Errorf("ListPending (-want +got):\n%s", diff)
	}
	// The same (channel, ref) replaces the earlier entry; the replacement is the newest.
	if err := s.AddPending(ctx, app, "abc", p1b); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListPending(ctx, app, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]channel.Pending{p2, p1b}, got); diff != "" {
		t.Errorf("ListPending after replacing (-want +got):\n%s", diff)
	}
	// Deleting one entry leaves the commit's others (and other commits') alone.
	if err := s.DeletePendingEntry(ctx, app, "abc", p1b.Channel, p1b.Ref); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListPending(ctx, app, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]channel.Pending{p2}, got); diff != "" {
		t.Errorf("ListPending after DeletePendingEntry (-want +got):\n%s", diff)
	}
	// A missing entry (same channel, other ref; unknown commit; unknown app) is no error.
	for _, c := range []struct{ app, commit, ch, ref string }{
		{app, "abc", p1b.Channel, p1b.Ref},
		{app, "abc", "beta", "refs/heads/other"},
		{app, "never", "beta", "refs/heads/main"},
		{NewApp(t), "abc", "beta", "refs/heads/main"},
	} {
		if err := s.DeletePendingEntry(ctx, c.app, c.commit, c.ch, c.ref); err != nil {
			t.Errorf("DeletePendingEntry(%+v) = %v, want nil", c, err)
		}
	}
	if got, err := s.ListPending(ctx, app, "abc"); err != nil || !cmp.Equal([]channel.Pending{p2}, got) {
		t.Errorf("ListPending after deleting missing entries = %v, %v; want [%v]", got, err, p2)
	}
	// The last entry can go too, and then a new one is listed alone.
	if err := s.DeletePendingEntry(ctx, app, "abc", p2.Channel, p2.Ref); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListPending(ctx, app, "abc"); err != nil || len(got) != 0 {
		t.Errorf("ListPending after deleting every entry = %v, %v; want empty", got, err)
	}
	if err := s.AddPending(ctx, app, "abc", p1); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListPending(ctx, app, "abc"); err != nil || !cmp.Equal([]channel.Pending{p1}, got) {
		t.Errorf("ListPending after re-adding = %v, %v; want [%v]", got, err, p1)
	}
	got, err = s.ListPending(ctx, app, "other")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]channel.Pending{p3}, got); diff != "" {
		t.Errorf("DeletePendingEntry touched another commit (-want +got):\n%s", diff)
	}
	if got, err := s.ListPending(ctx, NewApp(t), "abc"); err != nil || len(got) != 0 {
		t.Errorf("ListPending(unknown app) = %v, %v", got, err)
	}
}

func testSeenDelivery(t *testing.T, s Store) {
	ctx := t.Context()
	id := "delivery-" + randHex(t)
	for i, want := range []bool{false, true, true} {
		seen, err := s.SeenDelivery(ctx, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if seen != want {
			t.Errorf("SeenDelivery call %d = %v, want %v", i+1, seen, want)
		}
	}
	short := "delivery-" + randHex(t)
	if seen, err := s.SeenDelivery(ctx, short, 300*time.Millisecond); err != nil || seen {
		t.Fatalf("SeenDelivery(new, 300ms) = %v, %v", seen, err)
	}
	if seen, err := s.SeenDelivery(ctx, short, 300*time.Millisecond); err != nil || !seen {
		t.Fatalf("SeenDelivery(again) = %v, %v; want true", seen, err)
	}
	time.Sleep(700 * time.Millisecond)
	if seen, err := s.SeenDelivery(ctx, short, time.Hour); err != nil || seen {
		t.Errorf("SeenDelivery after the mark expired = %v, %v; want false", seen, err)
	}
	if seen, err := s.SeenDelivery(ctx, short, time.Hour); err != nil || !seen {
		t.Errorf("SeenDelivery after re-marking = %v, %v; want true", seen, err)
	}
}

// testMarkDelivery: MarkDelivery replaces a mark's expiry in both directions and creates
// a mark that SeenDelivery then reports; a redelivery after a lease that was never
// extended (a crash) is seen as new.
func testMarkDelivery(t *testing.T, s Store) {
	ctx := t.Context()
	const lease = 300 * time.Millisecond
	extended, crashed, created, shortened := "delivery-"+randHex(t), "delivery-"+randHex(t), "delivery-"+randHex(t), "delivery-"+randHex(t)
	for _, id := range []string{extended, crashed} {
		if seen, err := s.SeenDelivery(ctx, id, lease); err != nil || seen {
			t.Fatalf("SeenDelivery(%s, lease) = %v, %v; want false, nil", id, seen, err)
		}
	}
	if err := s.MarkDelivery(ctx, extended, time.Hour); err != nil {
		t.Fatalf("MarkDelivery(extend): %v", err)
	}
	if err := s.MarkDelivery(ctx, created, lease); err != nil {
		t.Fatalf("MarkDelivery(unmarked id): %v", err)
	}
	if seen, err := s.SeenDelivery(ctx, shortened, time.Hour); err != nil || seen {
		t.Fatalf("SeenDelivery(%s, 1h) = %v, %v; want false, nil", shortened, seen, err)
	}
	if err := s.MarkDelivery(ctx, shortened, lease); err != nil {
		t.Fatalf("MarkDelivery(shorten): %v", err)
	}
	// Before the lease ends every id is marked.
	for _, id := range []string{extended, crashed, created, shortened} {
		if seen, err := s.SeenDelivery(ctx, id, time.Hour); err != nil || !seen {
			t.Errorf("SeenDelivery(%s) within the lease = %v, %v; want true, nil", id, seen, err)
		}
	}
	time.Sleep(lease + 200*time.Millisecond)
	if seen, err := s.SeenDelivery(ctx, extended, time.Hour); err != nil || !seen {
		t.Errorf("SeenDelivery after the lease of an extended mark = %v, %v; want true, nil", seen, err)
	}
	for _, id := range []string{crashed, created, shortened} {
		if seen, err := s.SeenDelivery(ctx, id, time.Hour); err != nil || seen {
			t.Errorf("SeenDelivery(%s) after its %v mark expired = %v, %v; want false, nil", id, lease, seen, err)
		}
	}
	if err := s.MarkDelivery(ctx, "", time.Hour); err == nil {
		t.Errorf("MarkDelivery(\"\") = nil, want an error")
	}
}

func testSeenDeliveryConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	id := "delivery-" + randHex(t)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range Writers {
		wg.Go(func() {
			seen, err := s.SeenDelivery(ctx, id, time.Hour)
			if err != nil {
				t.Errorf("SeenDelivery: %v", err)
			}
			if err == nil && !seen {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Errorf("%d concurrent SeenDelivery calls of one id: %d saw it unmarked, want 1", Writers, fresh.Load())
	}
}

func testForgetDelivery(t *testing.T, s Store) {
	ctx := t.Context()
	id, other := "delivery-"+randHex(t), "delivery-"+randHex(t)
	for _, d := range []string{id, other} {
		if seen, err := s.SeenDelivery(ctx, d, time.Hour); err != nil || seen {
			t.Fatalf("SeenDelivery(%s) = %v, %v; want false, nil", d, seen, err)
		}
	}
	if err := s.ForgetDelivery(ctx, id); err != nil {
		t.Fatalf("ForgetDelivery: %v", err)
	}
	if seen, err := s.SeenDelivery(ctx, id, time.Hour); err != nil || seen {
		t.Errorf("SeenDelivery after ForgetDelivery = %v, %v; want false, nil", seen, err)
	}
	if seen, err := s.SeenDelivery(ctx, id, time.Hour); err != nil || !seen {
		t.Errorf("SeenDelivery after re-marking = %v, %v; want true, nil", seen, err)
	}
	if seen, err := s.SeenDelivery(ctx, other, time.Hour); err != nil || !seen {
		t.Errorf("ForgetDelivery touched another id: SeenDelivery = %v, %v; want true, nil", seen, err)
	}
	if err := s.ForgetDelivery(ctx, "delivery-"+randHex(t)); err != nil {
		t.Errorf("ForgetDelivery(never marked) = %v, want nil", err)
	}
	if err := s.ForgetDelivery(ctx, ""); err == nil {
		t.Errorf("ForgetDelivery(\"\") = nil, want an error")
	}
}

func testStats(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	err := s.RecordStats(ctx, app, []channel.StatEvent{
		{Device: "d1", Version: "1.0.10", Action: "set"},
		{Device: "d2", Version: "1.0.10", Action: "set"},
		{Device: "d1", Version: "1.0.10", Action: "download_complete"},
		{Device: "d1", Version: "1.0.9", Action: "update_fail"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.RecordStats(ctx, app, []channel.StatEvent{
		{Device: "d1", Version: "1.0.10", Action: "set"},
		{Device: "d3", Version: "1.0.10", Action: "some_future_action"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordStats(ctx, app, nil); err != nil {
		t.Fatalf("RecordStats(nil) = %v", err)
	}
	got, err := s.Stats(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	want := []channel.VersionStats{
		{Version: "1.0.9", Actions: map[string]int64{"update_fail": 1}, Devices: 1},
		{Version: "1.0.10", Actions: map[string]int64{"set": 3, "download_complete": 1, "some_future_action": 1}, Devices: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if got, err := s.Stats(ctx, NewApp(t)); err != nil || len(got) != 0 {
		t.Errorf("Stats(unknown app) = %v, %v", got, err)
	}
}

// testStatsManyDevices allows 2% error: Redis counts distinct devices with HyperLogLog.
func testStatsManyDevices(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	const n = 5000
	var events []channel.StatEvent
	for i := range n {
		events = append(events, channel.StatEvent{Device: fmt.Sprintf("device-%05d", i), Version: "3.0.0", Action: "set"})
		if i%2 == 0 { // repeated reports do not count twice
			events = append(events, channel.StatEvent{Device: fmt.Sprintf("device-%05d", i), Version: "3.0.0", Action: "download_complete"})
		}
	}
	for chunk := range slices.Chunk(events, 500) {
		if err := s.RecordStats(ctx, app, chunk); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Stats(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Actions["set"] != n || got[0].Actions["download_complete"] != n/2 {
		t.Fatalf("Stats = %+v, want %d set and %d download_complete", got, n, n/2)
	}
	if d := got[0].Devices; d < n*98/100 || d > n*102/100 {
		t.Errorf("Devices = %d, want %d within 2%%", d, n)
	}
}

func testFailedVersions(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	err := s.RecordStats(ctx, app, []channel.StatEvent{
		{Device: "d1", Version: "1.0.2", Action: "update_fail"},
		{Device: "d1", Version: "1.0.1", Action: "update_fail"},
		{Device: "d1", Version: "1.0.3", Action: "download_fail"},
		{Device: "d1", Version: "1.0.2", Action: "update_fail"},
		{Device: "d2", Version: "1.0.4", Action: "set"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.FailedVersions(ctx, app, "d1")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"1.0.1", "1.0.2"}, got); diff != "" {
		t.Errorf("FailedVersions(d1) (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ app, device string }{{app, "d2"}, {app, "d9"}, {NewApp(t), "d1"}} {
		if got, err := s.FailedVersions(ctx, tc.app, tc.device); err != nil || len(got) != 0 {
			t.Errorf("FailedVersions(%q, %q) = %v, %v; want empty", tc.app, tc.device, got, err)
		}
	}
}

// clearEntry is the audit entry the control plane hands ClearFailedVersions.
func clearEntry(app string) *channel.AuditEntry {
	return &channel.AuditEntry{App: app, Action: "clear_failed", Cause: "admin",
		Actor: &channel.Actor{Kind: "token", ID: "tok-1", Name: "support-desk", IP: "192.0.2.7"}}
}

// failDevice records update_fail reports of device for versions.
func failDevice(t *testing.T, s Store, app, device string, versions ...string) {
	t.Helper()
	var evs []channel.StatEvent
	for _, v := range versions {
		evs = append(evs, channel.StatEvent{Device: device, Version: v, Action: "update_fail"})
	}
	if err := s.RecordStats(t.Context(), app, evs); err != nil {
		t.Fatal(err)
	}
}

func testClearFailedVersions(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	failDevice(t, s, app, "d1", "1.0.2", "1.0.1")
	failDevice(t, s, app, "d2", "1.0.2")
	cleared, err := s.ClearFailedVersions(ctx, app, "d1", clearEntry(app))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1.0.1", "1.0.2"}, cleared); diff != "" {
		t.Errorf("ClearFailedVersions(d1) (-want +got):\n%s", diff)
	}
	if got, err := s.FailedVersions(ctx, app, "d1"); err != nil || len(got) != 0 {
		t.Errorf("FailedVersions(d1) after clearing = %v, %v; want none", got, err)
	}
	if got, err := s.FailedVersions(ctx, app, "d2"); err != nil || !cmp.Equal([]string{"1.0.2"}, got) {
		t.Errorf("FailedVersions(d2), another device, after clearing d1 = %v, %v; want [1.0.2]", got, err)
	}
	entries := auditOf(t, s, app, "clear_failed", "")
	if len(entries) != 1 {
		t.Fatalf("clear_failed audit entries = %+v, want one", entries)
	}
	e := entries[0]
	want := clearEntry(app)
	want.Device, want.Before, want.After = "d1", []byte(`["1.0.1","1.0.2"]`), []byte(`[]`)
	if diff := cmp.Diff(want, &e, cmpopts.IgnoreFields(channel.AuditEntry{}, "Time")); diff != "" {
		t.Errorf("clear_failed audit entry (-want +got):\n%s", diff)
	}
	if e.Time.IsZero() {
		t.Errorf("clear_failed audit entry has no time")
	}
	// Clearing again, or a device that never failed, forgets and records nothing.
	for _, d := range []string{"d1", "d9"} {
		if got, err := s.ClearFailedVersions(ctx, app, d, clearEntry(app)); err != nil || len(got) != 0 {
			t.Errorf("ClearFailedVersions(%s) with nothing to clear = %v, %v; want none", d, got, err)
		}
	}
	if got, err := s.ClearFailedVersions(ctx, NewApp(t), "d1", nil); err != nil || len(got) != 0 {
		t.Errorf("ClearFailedVersions of an unknown app = %v, %v; want none", got, err)
	}
	if n := len(auditOf(t, s, app, "clear_failed", "")); n != 1 {
		t.Errorf("%d clear_failed audit entries after clearing nothing, want still 1", n)
	}
	// A device that fails again after the clear is recorded again.
	failDevice(t, s, app, "d1", "1.0.3")
	if got, err := s.FailedVersions(ctx, app, "d1"); err != nil || !cmp.Equal([]string{"1.0.3"}, got) {
		t.Errorf("FailedVersions(d1) after failing again = %v, %v; want [1.0.3]", got, err)
	}
	// Without an audit entry the versions are forgotten and nothing is recorded.
	if got, err := s.ClearFailedVersions(ctx, app, "d2", nil); err != nil || !cmp.Equal([]string{"1.0.2"}, got) {
		t.Errorf("ClearFailedVersions(d2, nil) = %v, %v; want [1.0.2]", got, err)
	}
	if n := len(auditOf(t, s, app, "clear_failed", "")); n != 1 {
		t.Errorf("%d clear_failed audit entries after a clear without entry, want still 1", n)
	}
}

// testClearFailedVersionsConcurrent clears one device from many writers: exactly one
// forgets its versions and exactly one audit entry is written.
func testClearFailedVersionsConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	failDevice(t, s, app, "d1", "1.0.1", "1.0.2", "1.0.3")
	var won atomic.Int32
	var wg sync.WaitGroup
	for range Writers {
		wg.Go(func() {
			got, err := s.ClearFailedVersions(ctx, app, "d1", clearEntry(app))
			if err != nil {
				t.Error(err)
				return
			}
			if len(got) > 0 {
				won.Add(1)
				if !cmp.Equal([]string{"1.0.1", "1.0.2", "1.0.3"}, got) {
					t.Errorf("ClearFailedVersions = %v, want all three", got)
				}
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Errorf("%d of %d concurrent clears forgot versions, want 1", n, Writers)
	}
	if n := len(auditOf(t, s, app, "clear_failed", "")); n != 1 {
		t.Errorf("%d clear_failed audit entries, want 1", n)
	}
}

// testClearFailedVersionsInvalid checks that bad arguments are refused and change nothing.
func testClearFailedVersionsInvalid(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	failDevice(t, s, app, "d1", "1.0.1")
	for _, tc := range []struct {
		name, app, device string
		audit             *channel.AuditEntry
	}{
		{"empty app", "", "d1", nil},
		{"braces in app", "{" + app + "}", "d1", nil},
		{"empty device", app, "", nil},
		{"control character in device", app, "d1\x00", nil},
		{"audit entry of another app", app, "d1", clearEntry(NewApp(t))},
	} {
		if got, err := s.ClearFailedVersions(ctx, tc.app, tc.device, tc.audit); err == nil {
			t.Errorf("ClearFailedVersions, %s = %v, nil; want an error", tc.name, got)
		}
	}
	if got, err := s.FailedVersions(ctx, app, "d1"); err != nil || !cmp.Equal([]string{"1.0.1"}, got) {
		t.Errorf("FailedVersions(d1) after refused clears = %v, %v; want [1.0.1]", got, err)
	}
	if n := len(auditOf(t, s, app, "clear_failed", "")); n != 0 {
		t.Errorf("%d clear_failed audit entries after refused clears, want 0", n)
	}
}

func testSubscribe(t *testing.T, s Store) {
	SubscribeAcross(t, s, s)
}

// SubscribeAcross checks that a subscriber of sub receives the app id of a state change
// made through pub, and that the channel closes when its ctx ends.
func SubscribeAcross(t *testing.T, pub, sub Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	notes := sub.Subscribe(ctx)
	app := NewApp(t)
	deadline := time.After(wait)
	for i := range 2 {
		if _, err := pub.UpdateState(t.Context(), app, "production", promote(fmt.Sprintf("1.0.%d", i), "admin")); err != nil {
			t.Fatal(err)
		}
		for got := ""; got != app; {
			select {
			case got = <-notes:
			case <-deadline:
				t.Fatalf("no notification for %s within %s", app, wait)
			}
		}
	}
	cancel()
	for {
		select {
		case _, ok := <-notes:
			if !ok {
				return
			}
		case <-time.After(wait):
			t.Fatalf("subscription not closed %s after its ctx ended", wait)
		}
	}
}

func testPing(t *testing.T, s Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

// RunShared checks instances of one backend see each other: open is called twice and both
// stores must share data (a Redis server shared by two relay instances).
func RunShared(t *testing.T, open func(t *testing.T) Store) {
	t.Helper()
	a, b := open(t), open(t)
	t.Run("Subscribe", func(t *testing.T) { SubscribeAcross(t, a, b) })
	t.Run("UpdateStateConcurrent", func(t *testing.T) { ConcurrentUpdates(t, []Store{a, b}) })
	t.Run("Bundles", func(t *testing.T) {
		app := NewApp(t)
		want := put(t, a, Bundle(app, "1.0.0", "c"))
		got, err := b.GetBundle(t.Context(), app, "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("bundle seen through the other instance (-want +got):\n%s", diff)
		}
		if _, created, err := b.PutBundle(t.Context(), Bundle(app, "1.0.0", "c"), nil); err != nil || created {
			t.Errorf("PutBundle again through the other instance = %v, %v; want false, nil", created, err)
		}
	})
	t.Run("SeenDelivery", func(t *testing.T) {
		id := "delivery-" + randHex(t)
		if seen, err := a.SeenDelivery(t.Context(), id, time.Hour); err != nil || seen {
			t.Fatalf("SeenDelivery = %v, %v", seen, err)
		}
		if seen, err := b.SeenDelivery(t.Context(), id, time.Hour); err != nil || !seen {
			t.Errorf("SeenDelivery through the other instance = %v, %v; want true", seen, err)
		}
		if err := b.ForgetDelivery(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if seen, err := a.SeenDelivery(t.Context(), id, time.Hour); err != nil || seen {
			t.Errorf("SeenDelivery after ForgetDelivery through the other instance = %v, %v; want false", seen, err)
		}
	})
	t.Run("AccessNotify", func(t *testing.T) { AccessNotifyAcross(t, a, b) })
	t.Run("Lease", func(t *testing.T) { LeaseAcross(t, a, b) })
	t.Run("AssetLinks", func(t *testing.T) { AssetLinksAcross(t, a, b) })
	t.Run("Access", func(t *testing.T) {
		ctx := t.Context()
		tok := Token(t, "ci", time.Now().UTC())
		if err := a.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := b.PutToken(ctx, tok); !errors.Is(err, channel.ErrConflict) {
			t.Errorf("PutToken of the same id through the other instance = %v, want ErrConflict", err)
		}
		if _, err := b.RevokeToken(ctx, tok.ID, tok.CreatedAt.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if got, err := a.GetToken(ctx, tok.ID); err != nil || got.Active(time.Now()) {
			t.Errorf("token revoked through the other instance = %+v, %v; want revoked", got, err)
		}
		sess := Session(t, time.Now().Add(time.Hour))
		if err := a.PutSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		if got, err := b.GetSession(ctx, sess.IDHash); err != nil || !cmp.Equal(sess, got) {
			t.Errorf("session through the other instance = %+v, %v", got, err)
		}
		if err := b.DeleteSession(ctx, sess.IDHash); err != nil {
			t.Fatal(err)
		}
		if _, err := a.GetSession(ctx, sess.IDHash); !errors.Is(err, channel.ErrNotFound) {
			t.Errorf("session deleted through the other instance: GetSession = %v, want ErrNotFound", err)
		}
		l := Login(t, time.Now().Add(time.Minute))
		if err := a.PutLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		if got, err := b.TakeLogin(ctx, l.State); err != nil || !cmp.Equal(l, got) {
			t.Errorf("TakeLogin through the other instance = %+v, %v", got, err)
		}
		if _, err := a.TakeLogin(ctx, l.State); !errors.Is(err, channel.ErrNotFound) {
			t.Errorf("TakeLogin of a login taken through the other instance = %v, want ErrNotFound", err)
		}
	})
}

// RunDurability writes one of everything through a store from open, closes it, calls
// restart (if not nil; e.g. kill and restart the Redis server), opens the backend again
// and checks that everything acknowledged is still there. open must return an instance
// of the same backend each time.
func RunDurability(t *testing.T, open func(t *testing.T) Store, restart func(t *testing.T)) {
	t.Helper()
	ctx := t.Context()
	app := NewApp(t)
	s := open(t)
	var bundles []*channel.Bundle
	for i := range 20 {
		bundles = append(bundles, put(t, s, Bundle(app, fmt.Sprintf("1.0.%d", i), fmt.Sprintf("commit%d", i%7))))
	}
	var states []*channel.State
	for _, ch := range []string{"beta", "production"} {
		var st *channel.State
		for i := range 3 {
			var err error
			if st, err = s.UpdateState(ctx, app, ch, promote(fmt.Sprintf("1.0.%d", i), "admin")); err != nil {
				t.Fatal(err)
			}
		}
		states = append(states, st)
	}
	regEntry := channel.AuditEntry{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), App: app, Action: "register", Version: "1.0.20", Cause: "registration"}
	b, created, err := s.PutBundle(ctx, Bundle(app, "1.0.20", "commit20"), &regEntry)
	if err != nil || !created {
		t.Fatalf("PutBundle with an audit entry = created %v, %v", created, err)
	}
	bundles = append(bundles, b)
	if err := s.AppendAudit(ctx, channel.AuditEntry{App: app, Action: "pending", Cause: "webhook"}); err != nil {
		t.Fatal(err)
	}
	audit, err := s.ListAudit(ctx, app, 100)
	if err != nil {
		t.Fatal(err)
	}
	pending := channel.Pending{Channel: "production", Ref: "refs/tags/v2.0.0", Cause: "webhook:9", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := s.AddPending(ctx, app, "future", pending); err != nil {
		t.Fatal(err)
	}
	delivery := "delivery-" + randHex(t)
	if _, err := s.SeenDelivery(ctx, delivery, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordStats(ctx, app, []channel.StatEvent{
		{Device: "d1", Version: "1.0.2", Action: "set"},
		{Device: "d1", Version: "1.0.2", Action: "update_fail"},
		{Device: "d2", Version: "1.0.2", Action: "set"},
	}); err != nil {
		t.Fatal(err)
	}
	stats, err := s.Stats(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	tok := Token(t, "ci", time.Now().UTC())
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchToken(ctx, tok.ID, tok.CreatedAt.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	revoked := Token(t, "revoked", time.Now().UTC())
	if err := s.PutToken(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeToken(ctx, revoked.ID, revoked.CreatedAt.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	tok.LastUsed = tok.CreatedAt.Add(time.Minute)
	revoked.RevokedAt = revoked.CreatedAt.Add(time.Second)
	sess := Session(t, time.Now().Add(time.Hour))
	if err := s.PutSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	login := Login(t, time.Now().Add(time.Hour))
	if err := s.PutLogin(ctx, login); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if restart != nil {
		restart(t)
	}

	s = open(t)
	gotBundles, err := s.ListBundles(ctx, app, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantBundles := slices.Clone(bundles)
	slices.Reverse(wantBundles)
	if diff := cmp.Diff(wantBundles, gotBundles); diff != "" {
		t.Errorf("bundles after reopening (-want +got):\n%s", diff)
	}
	if b, err := s.BundleByCommit(ctx, app, "commit0"); err != nil || b.Version != "1.0.14" {
		t.Errorf("BundleByCommit after reopening = %v, %v; want 1.0.14", b, err)
	}
	gotStates, err := s.ListStates(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(states, gotStates); diff != "" {
		t.Errorf("states after reopening (-want +got):\n%s", diff)
	}
	gotAudit, err := s.ListAudit(ctx, app, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(audit, gotAudit); diff != "" {
		t.Errorf("audit after reopening (-want +got):\n%s", diff)
	}
	if got, err := s.ListPending(ctx, app, "future"); err != nil || !cmp.Equal([]channel.Pending{pending}, got) {
		t.Errorf("pending after reopening = %v, %v; want %v", got, err, pending)
	}
	if seen, err := s.SeenDelivery(ctx, delivery, time.Hour); err != nil || !seen {
		t.Errorf("delivery mark after reopening = %v, %v; want seen", seen, err)
	}
	gotStats, err := s.Stats(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stats, gotStats); diff != "" {
		t.Errorf("stats after reopening (-want +got):\n%s", diff)
	}
	if got, err := s.FailedVersions(ctx, app, "d1"); err != nil || !cmp.Equal([]string{"1.0.2"}, got) {
		t.Errorf("failed versions after reopening = %v, %v", got, err)
	}
	for _, want := range []*access.Token{tok, revoked} {
		if got, err := s.GetToken(ctx, want.ID); err != nil || !cmp.Equal(want, got) {
			t.Errorf("token after reopening = %+v, %v; want %+v", got, err, want)
		}
	}
	if got, err := s.GetSession(ctx, sess.IDHash); err != nil || !cmp.Equal(sess, got) {
		t.Errorf("session after reopening = %+v, %v; want %+v", got, err, sess)
	}
	if got, err := s.TakeLogin(ctx, login.State); err != nil || !cmp.Equal(login, got) {
		t.Errorf("login after reopening = %+v, %v; want %+v", got, err, login)
	}
	// Writes keep working after the restart.
	st, err := s.UpdateState(ctx, app, "production", promote("1.0.19", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rev != 4 {
		t.Errorf("Rev after reopening and one more update = %d, want 4", st.Rev)
	}
}

// FailedDevicesBounded checks the bound on devices with failed versions: s must have been
// opened with a bound of max devices per app. Failures of max+10 devices keep the max
// whose last failure is newest; a device failing again becomes the newest; and another
// app has its own bound.
func FailedDevicesBounded(t *testing.T, s Store, max int) {
	t.Helper()
	ctx := t.Context()
	app := NewApp(t)
	device := func(i int) string { return fmt.Sprintf("device-%05d", i) }
	fail := func(app string, i int) {
		t.Helper()
		if err := s.RecordStats(ctx, app, []channel.StatEvent{{Device: device(i), Version: "1.0.0", Action: "update_fail"}}); err != nil {
			t.Fatal(err)
		}
		// Redis orders failures by milliseconds: keep them apart.
		time.Sleep(2 * time.Millisecond)
	}
	kept := func(app string) []int {
		t.Helper()
		var out []int
		for i := range max + 12 {
			got, err := s.FailedVersions(ctx, app, device(i))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 0 {
				out = append(out, i)
			}
		}
		return out
	}
	seq := func(from, to int) []int {
		var out []int
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	for i := range max + 10 {
		fail(app, i)
	}
	if diff := cmp.Diff(seq(10, max+10), kept(app)); diff != "" {
		t.Errorf("devices with failed versions after %d failing devices, bound %d (-want +got):\n%s", max+10, max, diff)
	}
	fail(app, 10) // the oldest kept device fails again
	fail(app, max+10)
	want := append([]int{10}, seq(12, max+11)...)
	if diff := cmp.Diff(want, kept(app)); diff != "" {
		t.Errorf("devices with failed versions after device 10 failed again (-want +got):\n%s", diff)
	}
	// One big batch of new devices keeps the bound too.
	var batch []channel.StatEvent
	for i := range 5 * max {
		batch = append(batch, channel.StatEvent{Device: fmt.Sprintf("batch-%05d", i), Version: "1.0.1", Action: "update_fail"})
	}
	if err := s.RecordStats(ctx, app, batch); err != nil {
		t.Fatal(err)
	}
	if k := kept(app); len(k) != 0 {
		t.Errorf("devices of earlier failures kept after a batch of %d new ones: %v", 5*max, k)
	}
	n := 0
	for _, e := range batch {
		got, err := s.FailedVersions(ctx, app, e.Device)
		if err != nil {
			t.Fatal(err)
		}
		n += len(got)
	}
	if n != max {
		t.Errorf("%d devices of the batch kept failed versions, want the bound %d", n, max)
	}
	other := NewApp(t)
	fail(other, 0)
	if got := kept(other); !cmp.Equal([]int{0}, got) {
		t.Errorf("another app's failed devices = %v, want [0]", got)
	}
	// A cleared device frees its place: with max devices failed and the newest cleared,
	// one more failing device evicts nobody.
	cleared := NewApp(t)
	for i := range max {
		fail(cleared, i)
	}
	if got, err := s.ClearFailedVersions(ctx, cleared, device(max-1), nil); err != nil || len(got) != 1 {
		t.Fatalf("ClearFailedVersions(%s) = %v, %v; want one version", device(max-1), got, err)
	}
	fail(cleared, max)
	if diff := cmp.Diff(append(seq(0, max-1), max), kept(cleared)); diff != "" {
		t.Errorf("devices with failed versions after clearing the newest and one more failing (-want +got):\n%s", diff)
	}
}
