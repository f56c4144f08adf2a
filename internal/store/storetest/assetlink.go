package storetest

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// assetURL returns a plausible signed URL of asset id, distinct per call through tag.
func assetURL(id int64, tag string) string {
	return "https://objects.example.com/assets/" + strconv.FormatInt(id, 10) + "/" + tag + "?X-Amz-Expires=300"
}

// wantLink checks that asset id of app has link url expiring at exp.
func wantLink(t *testing.T, s Store, app string, id int64, url string, exp time.Time) {
	t.Helper()
	got, gotExp, ok, err := s.GetAssetLink(t.Context(), app, id)
	if err != nil || !ok || got != url || !gotExp.Equal(exp) {
		t.Errorf("GetAssetLink(%s, %d) = %q, %s, %v, %v; want %q, %s, true, nil", app, id, got, gotExp, ok, err, url, exp)
	}
}

// wantNoLink checks that asset id of app has no link.
func wantNoLink(t *testing.T, s Store, app string, id int64) {
	t.Helper()
	if got, exp, ok, err := s.GetAssetLink(t.Context(), app, id); err != nil || ok || got != "" || !exp.IsZero() {
		t.Errorf("GetAssetLink(%s, %d) = %q, %s, %v, %v; want no link", app, id, got, exp, ok, err)
	}
}

// testAssetLinks checks the round trip, replacement, and that links are per app and per
// asset.
func testAssetLinks(t *testing.T, s Store) {
	ctx := t.Context()
	app, other := NewApp(t), NewApp(t)
	wantNoLink(t, s, app, 7)
	exp := time.Now().Add(5 * time.Minute)
	if err := s.PutAssetLink(ctx, app, 7, assetURL(7, "first"), exp); err != nil {
		t.Fatal(err)
	}
	wantLink(t, s, app, 7, assetURL(7, "first"), exp)
	wantNoLink(t, s, other, 7) // another app's asset of the same id
	wantNoLink(t, s, app, 8)   // another asset of the app
	exp2 := exp.Add(time.Minute)
	if err := s.PutAssetLink(ctx, other, 7, assetURL(7, "other"), exp2); err != nil {
		t.Fatal(err)
	}
	wantLink(t, s, app, 7, assetURL(7, "first"), exp)
	wantLink(t, s, other, 7, assetURL(7, "other"), exp2)
	// A new link replaces the old one, with its own expiry (earlier or later).
	exp3 := time.Now().Add(2 * time.Minute)
	if err := s.PutAssetLink(ctx, app, 7, assetURL(7, "second"), exp3); err != nil {
		t.Fatal(err)
	}
	wantLink(t, s, app, 7, assetURL(7, "second"), exp3)
}

// testAssetLinkExpiry checks that a link is gone at its expiry and a replaced link's old
// expiry does not end the new one.
func testAssetLinkExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	exp := time.Now().Add(400 * time.Millisecond)
	if err := s.PutAssetLink(ctx, app, 1, assetURL(1, "short"), exp); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAssetLink(ctx, app, 2, assetURL(2, "short"), exp); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(time.Hour)
	if err := s.PutAssetLink(ctx, app, 2, assetURL(2, "long"), long); err != nil {
		t.Fatal(err)
	}
	wantLink(t, s, app, 1, assetURL(1, "short"), exp)
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	wantNoLink(t, s, app, 1)
	wantLink(t, s, app, 2, assetURL(2, "long"), long)
}

// testAssetLinkInvalid checks that bad arguments are refused and store nothing.
func testAssetLinkInvalid(t *testing.T, s Store) { AssetLinkInvalid(t, s, nil) }

// AssetLinkInvalid checks that PutAssetLink and GetAssetLink refuse bad arguments with an
// error (wrapping want, when not nil) and that a refused PutAssetLink stores nothing.
func AssetLinkInvalid(t *testing.T, s Store, want error) {
	ctx := t.Context()
	app := NewApp(t)
	soon := time.Now().Add(5 * time.Minute)
	for _, tc := range []struct {
		name, app, url string
		id             int64
		exp            time.Time
	}{
		{"empty app", "", assetURL(1, "x"), 1, soon},
		{"app with braces", "com.{x}", assetURL(1, "x"), 1, soon},
		{"zero id", app, assetURL(1, "x"), 0, soon},
		{"negative id", app, assetURL(1, "x"), -1, soon},
		{"empty url", app, "", 1, soon},
		{"url with a newline", app, "https://x.example/a\nb", 1, soon},
		{"url too long", app, "https://x.example/" + strings.Repeat("a", 9000), 1, soon},
		{"expired", app, assetURL(1, "x"), 1, time.Now().Add(-time.Second)},
		{"zero expiry", app, assetURL(1, "x"), 1, time.Time{}},
		{"expiry too far", app, assetURL(1, "x"), 1, time.Now().Add(8 * 24 * time.Hour)},
	} {
		err := s.PutAssetLink(ctx, tc.app, tc.id, tc.url, tc.exp)
		if err == nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("PutAssetLink with %s = %v; want an error wrapping %v", tc.name, err, want)
		}
	}
	wantNoLink(t, s, app, 1)
	for _, tc := range []struct {
		app string
		id  int64
	}{{"", 1}, {"a\x00b", 1}, {app, 0}, {app, -5}} {
		if _, _, ok, err := s.GetAssetLink(ctx, tc.app, tc.id); err == nil || ok || (want != nil && !errors.Is(err, want)) {
			t.Errorf("GetAssetLink(%q, %d) = %v, %v; want an error wrapping %v", tc.app, tc.id, ok, err, want)
		}
	}
}

// AssetLinksAcross checks that a link stored through store a is read through store b (two
// relay instances sharing one backend), and replaced through b for a.
func AssetLinksAcross(t *testing.T, a, b Store) {
	ctx := t.Context()
	app := NewApp(t)
	exp := time.Now().Add(5 * time.Minute)
	if err := a.PutAssetLink(ctx, app, 42, assetURL(42, "a"), exp); err != nil {
		t.Fatal(err)
	}
	wantLink(t, b, app, 42, assetURL(42, "a"), exp)
	if err := b.PutAssetLink(ctx, app, 42, assetURL(42, "b"), exp.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantLink(t, a, app, 42, assetURL(42, "b"), exp.Add(time.Minute))
}

// AssetLinksBounded checks a store that keeps at most max asset links (the embedded store):
// storing one more deletes an expired link first, else the one that expires soonest.
func AssetLinksBounded(t *testing.T, s Store, max int) {
	ctx := t.Context()
	app := NewApp(t)
	short := time.Now().Add(300 * time.Millisecond)
	if err := s.PutAssetLink(ctx, app, 1, assetURL(1, "short"), short); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(time.Hour)
	for i := 2; i <= max; i++ {
		if err := s.PutAssetLink(ctx, app, int64(i), assetURL(int64(i), "long"), base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Until(short) + 50*time.Millisecond)
	// Full, with one expired: the new link takes the expired one's place.
	next := int64(max + 1)
	if err := s.PutAssetLink(ctx, app, next, assetURL(next, "long"), base.Add(time.Duration(next)*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := int64(2); i <= next; i++ {
		wantLink(t, s, app, i, assetURL(i, "long"), base.Add(time.Duration(i)*time.Second))
	}
	// Full, none expired: the link that expires soonest (asset 2) goes, even though the new
	// one expires sooner still.
	if err := s.PutAssetLink(ctx, app, next+1, assetURL(next+1, "soon"), time.Now().Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantNoLink(t, s, app, 2)
	wantLink(t, s, app, 3, assetURL(3, "long"), base.Add(3*time.Second))
	// Replacing a stored link does not count it twice: nothing else goes.
	if err := s.PutAssetLink(ctx, app, 3, assetURL(3, "again"), base.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	wantLink(t, s, app, 4, assetURL(4, "long"), base.Add(4*time.Second))
}
