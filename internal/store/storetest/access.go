package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// accessChanged is internal/store's AccessChanged, the notification of a token revocation
// or a session deletion (repeated here, as Store is).
const accessChanged = "\x00access"

// expiring is the lifetime of the records the expiry checks let run out.
const expiring = 300 * time.Millisecond

// Token returns a fresh token record with every field set (one from access.NewToken, so
// ids are unique across checks sharing a backend).
func Token(t testing.TB, name string, created time.Time) *access.Token {
	t.Helper()
	_, tok, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok.Name = name
	tok.Grants = []access.Grant{{App: "com.example.app", Role: access.Deployer}, {App: access.AllApps, Role: access.Viewer}}
	tok.CreatedBy = "token:admin0000000"
	tok.CreatedAt = created
	tok.ExpiresAt = created.Add(90 * 24 * time.Hour)
	return tok
}

// Session returns a session record expiring at exp, under a fresh id hash.
func Session(t testing.TB, exp time.Time) *access.Session {
	t.Helper()
	id, err := access.RandomID(32)
	if err != nil {
		t.Fatal(err)
	}
	return &access.Session{
		IDHash: access.HashToken(access.SessionPrefix + id), Subject: "248289761001", Issuer: "https://accounts.example.com",
		Email: "ana@example.com", Name: "Ana", Grants: []access.Grant{{App: access.AllApps, Role: access.Admin}},
		CSRF: "csrf-" + randHex(t), CreatedAt: exp.Add(-time.Hour), ExpiresAt: exp, LastSeen: exp.Add(-time.Minute),
	}
}

// Login returns a login record expiring at exp, under a fresh state.
func Login(t testing.TB, exp time.Time) *access.Login {
	t.Helper()
	state, err := access.RandomID(20)
	if err != nil {
		t.Fatal(err)
	}
	return &access.Login{
		State: state, Nonce: "nonce-" + randHex(t), Verifier: "verifier-" + randHex(t), Return: "/ui/apps",
		Browser: access.HashToken("browser-" + randHex(t)), ExpiresAt: exp,
	}
}

// mine returns the tokens of list whose ids are in ids, in list's order: a backend shared
// by several checks holds their tokens too.
func mine(list []*access.Token, ids ...string) []*access.Token {
	return slices.DeleteFunc(slices.Clone(list), func(t *access.Token) bool { return !slices.Contains(ids, t.ID) })
}

func listMine(t *testing.T, s Store, ids ...string) []*access.Token {
	t.Helper()
	list, err := s.ListTokens(t.Context())
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	return mine(list, ids...)
}

func testTokens(t *testing.T, s Store) {
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour)
	a := Token(t, "ci", base)
	a.LastUsed = base.Add(time.Minute)
	b := Token(t, "nightly", base.Add(time.Second))
	c := Token(t, "tie-1", base.Add(2*time.Second))
	d := Token(t, "tie-2", base.Add(2*time.Second))
	d.RevokedAt = base.Add(time.Hour)
	for _, tok := range []*access.Token{a, b, c, d} {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatalf("PutToken(%s): %v", tok.Name, err)
		}
	}
	for _, want := range []*access.Token{a, b, c, d} {
		got, err := s.GetToken(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetToken(%s): %v", want.Name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetToken(%s) (-want +got):\n%s", want.Name, diff)
		}
	}
	// Newest first; c and d were created at the same time and sort by id.
	want := []*access.Token{c, d, b, a}
	slices.SortFunc(want[:2], func(x, y *access.Token) int { return strings.Compare(x.ID, y.ID) })
	if diff := cmp.Diff(want, listMine(t, s, a.ID, b.ID, c.ID, d.ID)); diff != "" {
		t.Errorf("ListTokens (-want +got):\n%s", diff)
	}

	// Another token under a's id: a conflict that changes nothing.
	other := Token(t, "impostor", base.Add(time.Hour))
	other.ID = a.ID
	if err := s.PutToken(ctx, other); !errors.Is(err, channel.ErrConflict) {
		t.Errorf("PutToken(existing id) = %v, want ErrConflict", err)
	}
	if err := s.PutToken(ctx, a); !errors.Is(err, channel.ErrConflict) {
		t.Errorf("PutToken(the same token again) = %v, want ErrConflict", err)
	}
	if got, err := s.GetToken(ctx, a.ID); err != nil || !cmp.Equal(a, got) {
		t.Errorf("GetToken after a conflict = %+v, %v; want %+v", got, err, a)
	}
	if _, err := s.GetToken(ctx, "unknown"+randHex(t)); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("GetToken(unknown) = %v, want ErrNotFound", err)
	}
}

func testRevokeToken(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Now().UTC()
	tok := Token(t, "ci", now.Add(-time.Hour))
	other := Token(t, "other", now.Add(-time.Hour))
	for _, x := range []*access.Token{tok, other} {
		if err := s.PutToken(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if !tok.Active(now) {
		t.Fatal("a fresh token is not active")
	}
	at := now.Add(-time.Minute)
	got, err := s.RevokeToken(ctx, tok.ID, at)
	if err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	want := *tok
	want.RevokedAt = at
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("RevokeToken returned (-want +got):\n%s", diff)
	}
	if got.Active(now) {
		t.Error("a revoked token is active")
	}
	// Revoking again keeps the first revocation time.
	got, err = s.RevokeToken(ctx, tok.ID, now)
	if err != nil {
		t.Fatalf("RevokeToken again: %v", err)
	}
	if !got.RevokedAt.Equal(at) {
		t.Errorf("RevokeToken again: RevokedAt = %v, want the first revocation %v", got.RevokedAt, at)
	}
	if stored, err := s.GetToken(ctx, tok.ID); err != nil || !cmp.Equal(&want, stored) {
		t.Errorf("GetToken after revoking = %+v, %v; want %+v", stored, err, &want)
	}
	if stored, err := s.GetToken(ctx, other.ID); err != nil || !cmp.Equal(other, stored) {
		t.Errorf("revoking one token changed another: %+v, %v", stored, err)
	}
	if _, err := s.RevokeToken(ctx, "unknown"+randHex(t), now); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("RevokeToken(unknown) = %v, want ErrNotFound", err)
	}
	// A zero time means now.
	got, err = s.RevokeToken(ctx, other.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt.Before(now.Add(-time.Second)) || got.RevokedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("RevokeToken(zero time): RevokedAt = %v, want about %v", got.RevokedAt, now)
	}
}

func testTouchToken(t *testing.T, s Store) {
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour)
	tok := Token(t, "ci", base)
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	lastUsed := func() time.Time {
		t.Helper()
		got, err := s.GetToken(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsed
	}
	for i, tc := range []struct{ at, want time.Time }{
		{base.Add(10 * time.Minute), base.Add(10 * time.Minute)},
		{base.Add(5 * time.Minute), base.Add(10 * time.Minute)}, // never backwards
		{base.Add(10*time.Minute + time.Nanosecond), base.Add(10*time.Minute + time.Nanosecond)},
		{time.Time{}, base.Add(10*time.Minute + time.Nanosecond)},
		{base.Add(20 * time.Minute), base.Add(20 * time.Minute)},
	} {
		if err := s.TouchToken(ctx, tok.ID, tc.at); err != nil {
			t.Fatalf("TouchToken #%d: %v", i, err)
		}
		if got := lastUsed(); !got.Equal(tc.want) {
			t.Errorf("LastUsed after TouchToken #%d (%v) = %v, want %v", i, tc.at, got, tc.want)
		}
	}
	if err := s.TouchToken(ctx, "unknown"+randHex(t), base); err != nil {
		t.Errorf("TouchToken(unknown) = %v, want nil", err)
	}
	if _, err := s.GetToken(ctx, "unknown"+randHex(t)); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TouchToken created a token: GetToken = %v", err)
	}
}

// testTokensConcurrent: of concurrent PutTokens with one id exactly one succeeds, and
// concurrent touches neither undo a revocation nor lose the latest LastUsed.
func testTokensConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	base := time.Now().UTC().Add(-time.Hour)
	id := Token(t, "", base).ID
	racers := make([]*access.Token, Writers)
	for i := range racers {
		racers[i] = Token(t, fmt.Sprintf("racer-%d", i), base)
		racers[i].ID = id
	}
	var created, conflicts atomic.Int32
	var wg sync.WaitGroup
	for _, tok := range racers {
		wg.Go(func() {
			switch err := s.PutToken(ctx, tok); {
			case err == nil:
				created.Add(1)
			case errors.Is(err, channel.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("PutToken: %v", err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 || conflicts.Load() != Writers-1 {
		t.Errorf("%d concurrent PutTokens of one id: %d created, %d conflicts; want 1 and %d", Writers, created.Load(), conflicts.Load(), Writers-1)
	}

	revokedAt := base.Add(30 * time.Minute)
	for i := range Writers {
		wg.Go(func() {
			if err := s.TouchToken(ctx, id, base.Add(time.Duration(i)*time.Second)); err != nil {
				t.Errorf("TouchToken: %v", err)
			}
		})
		if i == Writers/2 {
			wg.Go(func() {
				if _, err := s.RevokeToken(ctx, id, revokedAt); err != nil {
					t.Errorf("RevokeToken: %v", err)
				}
			})
		}
	}
	wg.Wait()
	got, err := s.GetToken(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(revokedAt) {
		t.Errorf("RevokedAt after concurrent touches = %v, want %v", got.RevokedAt, revokedAt)
	}
	if want := base.Add(time.Duration(Writers-1) * time.Second); !got.LastUsed.Equal(want) {
		t.Errorf("LastUsed after concurrent touches = %v, want the latest %v", got.LastUsed, want)
	}
}

func testSessions(t *testing.T, s Store) {
	ctx := t.Context()
	exp := time.Now().UTC().Add(time.Hour)
	sess := Session(t, exp)
	other := Session(t, exp)
	for _, x := range []*access.Session{sess, other} {
		if err := s.PutSession(ctx, x); err != nil {
			t.Fatalf("PutSession: %v", err)
		}
	}
	got, err := s.GetSession(ctx, sess.IDHash)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if diff := cmp.Diff(sess, got); diff != "" {
		t.Errorf("GetSession (-want +got):\n%s", diff)
	}
	// PutSession replaces.
	changed := *sess
	changed.LastSeen = sess.LastSeen.Add(30 * time.Second)
	changed.Grants = []access.Grant{{App: "com.example.app", Role: access.Viewer}}
	if err := s.PutSession(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSession(ctx, sess.IDHash); err != nil || !cmp.Equal(&changed, got) {
		t.Errorf("GetSession after replacing = %+v, %v; want %+v", got, err, &changed)
	}
	if err := s.DeleteSession(ctx, sess.IDHash); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.GetSession(ctx, sess.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("GetSession after DeleteSession = %v, want ErrNotFound", err)
	}
	if got, err := s.GetSession(ctx, other.IDHash); err != nil || !cmp.Equal(other, got) {
		t.Errorf("DeleteSession touched another session: %+v, %v", got, err)
	}
	if err := s.DeleteSession(ctx, sess.IDHash); err != nil {
		t.Errorf("DeleteSession(deleted) = %v, want nil", err)
	}
	if _, err := s.GetSession(ctx, access.HashToken("never"+randHex(t))); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("GetSession(unknown) = %v, want ErrNotFound", err)
	}
}

func testSessionExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	short := Session(t, time.Now().Add(expiring))
	long := Session(t, time.Now().Add(time.Hour))
	past := Session(t, time.Now().Add(-time.Second))
	for _, x := range []*access.Session{short, long, past} {
		if err := s.PutSession(ctx, x); err != nil {
			t.Fatalf("PutSession: %v", err)
		}
	}
	if _, err := s.GetSession(ctx, short.IDHash); err != nil {
		t.Fatalf("GetSession before it expires: %v", err)
	}
	if _, err := s.GetSession(ctx, past.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("GetSession of a session stored already expired = %v, want ErrNotFound", err)
	}
	time.Sleep(expiring + 400*time.Millisecond)
	if _, err := s.GetSession(ctx, short.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("GetSession after its ExpiresAt = %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, long.IDHash); err != nil {
		t.Errorf("GetSession of a session still valid = %v", err)
	}
	// An expired session replaced with a later expiry is back.
	short.ExpiresAt = time.Now().Add(time.Hour)
	if err := s.PutSession(ctx, short); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSession(ctx, short.IDHash); err != nil || !cmp.Equal(short, got) {
		t.Errorf("GetSession after extending = %+v, %v", got, err)
	}
}

// testTouchSession: TouchSession moves LastSeen forward only, changes nothing else, keeps
// the expiry, and never creates a session (unknown, deleted or expired).
func testTouchSession(t *testing.T, s Store) {
	ctx := t.Context()
	sess := Session(t, time.Now().UTC().Add(time.Hour))
	if err := s.PutSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	base := sess.LastSeen
	for i, tc := range []struct{ at, want time.Time }{
		{base.Add(time.Minute), base.Add(time.Minute)},
		{base.Add(30 * time.Second), base.Add(time.Minute)}, // never backwards
		{base.Add(time.Minute + time.Nanosecond), base.Add(time.Minute + time.Nanosecond)},
		{time.Time{}, base.Add(time.Minute + time.Nanosecond)},
		{base.Add(5 * time.Minute), base.Add(5 * time.Minute)},
	} {
		if err := s.TouchSession(ctx, sess.IDHash, tc.at); err != nil {
			t.Fatalf("TouchSession #%d: %v", i, err)
		}
		want := *sess
		want.LastSeen = tc.want
		if got, err := s.GetSession(ctx, sess.IDHash); err != nil || !cmp.Equal(&want, got) {
			t.Errorf("GetSession after TouchSession #%d (%v) = %+v, %v; want %+v", i, tc.at, got, err, &want)
		}
	}

	unknown := access.HashToken("never" + randHex(t))
	if err := s.TouchSession(ctx, unknown, base); err != nil {
		t.Errorf("TouchSession(unknown) = %v, want nil", err)
	}
	if _, err := s.GetSession(ctx, unknown); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TouchSession created a session: GetSession = %v", err)
	}

	if err := s.DeleteSession(ctx, sess.IDHash); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, sess.IDHash, base.Add(time.Hour)); err != nil {
		t.Errorf("TouchSession(deleted) = %v, want nil", err)
	}
	if got, err := s.GetSession(ctx, sess.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TouchSession after DeleteSession resurrected the session: %+v, %v", got, err)
	}

	// A touched session still expires at its ExpiresAt, and a touch after that is no error
	// and brings nothing back.
	short := Session(t, time.Now().Add(expiring))
	if err := s.PutSession(ctx, short); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, short.IDHash, short.LastSeen.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(expiring + 400*time.Millisecond)
	if _, err := s.GetSession(ctx, short.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("GetSession of a touched session after its ExpiresAt = %v, want ErrNotFound", err)
	}
	if err := s.TouchSession(ctx, short.IDHash, time.Now()); err != nil {
		t.Errorf("TouchSession(expired) = %v, want nil", err)
	}
	if got, err := s.GetSession(ctx, short.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TouchSession brought an expired session back: %+v, %v", got, err)
	}
}

// testTouchSessionConcurrent: concurrent touches keep the latest LastSeen and do not undo
// a concurrent replacement of the session, and touches racing with a logout do not bring
// the session back.
func testTouchSessionConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	sess := Session(t, time.Now().UTC().Add(time.Hour))
	if err := s.PutSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	base := sess.LastSeen
	replaced := *sess
	replaced.Grants = []access.Grant{{App: "com.example.app", Role: access.Viewer}}
	var wg sync.WaitGroup
	for i := range Writers {
		wg.Go(func() {
			if err := s.TouchSession(ctx, sess.IDHash, base.Add(time.Duration(i+1)*time.Second)); err != nil {
				t.Errorf("TouchSession: %v", err)
			}
		})
		if i == Writers/2 {
			wg.Go(func() {
				if err := s.PutSession(ctx, &replaced); err != nil {
					t.Errorf("PutSession: %v", err)
				}
			})
		}
	}
	wg.Wait()
	got, err := s.GetSession(ctx, sess.IDHash)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(replaced.Grants, got.Grants) {
		t.Errorf("Grants after a PutSession among concurrent touches = %v, want %v (a touch overwrote the replacement)", got.Grants, replaced.Grants)
	}
	// Touches arriving after the replacement leave LastSeen at most at the latest touch.
	if latest := base.Add(time.Duration(Writers) * time.Second); got.LastSeen.After(latest) || got.LastSeen.Before(base) {
		t.Errorf("LastSeen after concurrent touches = %v, want within [%v, %v]", got.LastSeen, base, latest)
	}
	// With no replacement racing, the latest touch wins.
	for i := range Writers {
		wg.Go(func() {
			if err := s.TouchSession(ctx, sess.IDHash, base.Add(time.Minute+time.Duration(i)*time.Second)); err != nil {
				t.Errorf("TouchSession: %v", err)
			}
		})
	}
	wg.Wait()
	if got, err := s.GetSession(ctx, sess.IDHash); err != nil || !got.LastSeen.Equal(base.Add(time.Minute+time.Duration(Writers-1)*time.Second)) {
		t.Errorf("LastSeen after concurrent touches = %+v, %v; want the latest", got, err)
	}

	for i := range Writers {
		wg.Go(func() {
			if err := s.TouchSession(ctx, sess.IDHash, base.Add(time.Hour+time.Duration(i)*time.Second)); err != nil {
				t.Errorf("TouchSession: %v", err)
			}
		})
		if i == Writers/2 {
			wg.Go(func() {
				if err := s.DeleteSession(ctx, sess.IDHash); err != nil {
					t.Errorf("DeleteSession: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if got, err := s.GetSession(ctx, sess.IDHash); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("touches racing with DeleteSession resurrected the session: %+v, %v", got, err)
	}
}

func testLogins(t *testing.T, s Store) {
	ctx := t.Context()
	l := Login(t, time.Now().UTC().Add(10*time.Minute))
	other := Login(t, time.Now().UTC().Add(10*time.Minute))
	for _, x := range []*access.Login{l, other} {
		if err := s.PutLogin(ctx, x); err != nil {
			t.Fatalf("PutLogin: %v", err)
		}
	}
	got, err := s.TakeLogin(ctx, l.State)
	if err != nil {
		t.Fatalf("TakeLogin: %v", err)
	}
	if diff := cmp.Diff(l, got); diff != "" {
		t.Errorf("TakeLogin (-want +got):\n%s", diff)
	}
	if _, err := s.TakeLogin(ctx, l.State); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TakeLogin again = %v, want ErrNotFound (a state works once)", err)
	}
	if got, err := s.TakeLogin(ctx, other.State); err != nil || !cmp.Equal(other, got) {
		t.Errorf("TakeLogin(other) = %+v, %v; want %+v", got, err, other)
	}
	if _, err := s.TakeLogin(ctx, "never"+randHex(t)); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TakeLogin(unknown) = %v, want ErrNotFound", err)
	}
}

func testLoginExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	short := Login(t, time.Now().Add(expiring))
	long := Login(t, time.Now().Add(time.Hour))
	past := Login(t, time.Now().Add(-time.Second))
	for _, x := range []*access.Login{short, long, past} {
		if err := s.PutLogin(ctx, x); err != nil {
			t.Fatalf("PutLogin: %v", err)
		}
	}
	if _, err := s.TakeLogin(ctx, past.State); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TakeLogin of a login stored already expired = %v, want ErrNotFound", err)
	}
	time.Sleep(expiring + 400*time.Millisecond)
	if _, err := s.TakeLogin(ctx, short.State); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("TakeLogin after its ExpiresAt = %v, want ErrNotFound", err)
	}
	if got, err := s.TakeLogin(ctx, long.State); err != nil || !cmp.Equal(long, got) {
		t.Errorf("TakeLogin of a login still valid = %+v, %v", got, err)
	}
}

func testTakeLoginConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	for round := range 3 {
		l := Login(t, time.Now().Add(time.Minute))
		if err := s.PutLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		var got, missed atomic.Int32
		var wg sync.WaitGroup
		for range Writers {
			wg.Go(func() {
				switch x, err := s.TakeLogin(ctx, l.State); {
				case err == nil:
					if !cmp.Equal(l, x) {
						t.Errorf("TakeLogin = %+v, want %+v", x, l)
					}
					got.Add(1)
				case errors.Is(err, channel.ErrNotFound):
					missed.Add(1)
				default:
					t.Errorf("TakeLogin: %v", err)
				}
			})
		}
		wg.Wait()
		if got.Load() != 1 || missed.Load() != Writers-1 {
			t.Errorf("round %d: %d concurrent TakeLogins of one state: %d got it, %d ErrNotFound; want 1 and %d",
				round, Writers, got.Load(), missed.Load(), Writers-1)
		}
	}
}

// waitAccessChanged waits for [accessChanged] on notes, skipping app ids.
func waitAccessChanged(t *testing.T, notes <-chan string, after string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case n, ok := <-notes:
			if !ok {
				t.Fatalf("subscription closed while waiting for the notification of %s", after)
			}
			if n == accessChanged {
				return
			}
		case <-deadline:
			t.Fatalf("no access notification within %s after %s", wait, after)
		}
	}
}

func testAccessNotify(t *testing.T, s Store) { AccessNotifyAcross(t, s, s) }

// AccessNotifyAcross checks that a subscriber of sub receives the access notification
// after a token revocation and a session deletion made through pub, and none for the
// other access writes.
func AccessNotifyAcross(t *testing.T, pub, sub Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	notes := sub.Subscribe(ctx)
	tok := Token(t, "ci", time.Now().UTC())
	if err := pub.PutToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.RevokeToken(t.Context(), tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitAccessChanged(t, notes, "RevokeToken")
	sess := Session(t, time.Now().Add(time.Hour))
	if err := pub.PutSession(t.Context(), sess); err != nil {
		t.Fatal(err)
	}
	if err := pub.DeleteSession(t.Context(), sess.IDHash); err != nil {
		t.Fatal(err)
	}
	waitAccessChanged(t, notes, "DeleteSession")
	// App ids still arrive on the same subscription.
	app := NewApp(t)
	if _, err := pub.UpdateState(t.Context(), app, "production", promote("1.0.0", "admin")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(wait)
	for got := ""; got != app; {
		select {
		case got = <-notes:
		case <-deadline:
			t.Fatalf("no notification for %s within %s", app, wait)
		}
	}
}

func testAccessInvalid(t *testing.T, s Store) { AccessInvalid(t, s, nil) }

// AccessInvalid checks that the access methods refuse bad arguments (empty or
// control-character ids, hashes and states, nil records, records without an expiry) with
// an error, wrapping want if it is not nil, and store nothing.
func AccessInvalid(t *testing.T, s Store, want error) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	check := func(what string, err error) {
		t.Helper()
		if err == nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("%s = %v, want an error wrapping %v", what, err, want)
		}
	}
	var bad []*access.Token
	for _, mod := range []func(*access.Token){
		func(x *access.Token) { x.ID = "" },
		func(x *access.Token) { x.ID = "abc\ndef" },
		func(x *access.Token) { x.ID = "abc\x00def" },
		func(x *access.Token) { x.Hash = "" },
		func(x *access.Token) { x.Hash = "ab\rcd" },
	} {
		tok := Token(t, "bad", now)
		mod(tok)
		bad = append(bad, tok)
		check(fmt.Sprintf("PutToken(id %q, hash %q)", tok.ID, tok.Hash), s.PutToken(ctx, tok))
	}
	check("PutToken(nil)", s.PutToken(ctx, nil))
	list, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range list {
		for _, b := range bad {
			if tok.Hash == b.Hash && b.Hash != "" {
				t.Errorf("an invalid PutToken stored %+v", tok)
			}
		}
	}
	for _, id := range []string{"", "a\tb", "a\x7fb"} {
		_, err := s.GetToken(ctx, id)
		check(fmt.Sprintf("GetToken(%q)", id), err)
		_, err = s.RevokeToken(ctx, id, now)
		check(fmt.Sprintf("RevokeToken(%q)", id), err)
		check(fmt.Sprintf("TouchToken(%q)", id), s.TouchToken(ctx, id, now))
		_, err = s.GetSession(ctx, id)
		check(fmt.Sprintf("GetSession(%q)", id), err)
		check(fmt.Sprintf("TouchSession(%q)", id), s.TouchSession(ctx, id, now))
		check(fmt.Sprintf("DeleteSession(%q)", id), s.DeleteSession(ctx, id))
		_, err = s.TakeLogin(ctx, id)
		check(fmt.Sprintf("TakeLogin(%q)", id), err)
	}

	check("PutSession(nil)", s.PutSession(ctx, nil))
	for name, mod := range map[string]func(*access.Session){
		"empty id hash":   func(x *access.Session) { x.IDHash = "" },
		"control char":    func(x *access.Session) { x.IDHash = "ab\ncd" },
		"no expiry":       func(x *access.Session) { x.ExpiresAt = time.Time{} },
		"expiry pre-1970": func(x *access.Session) { x.ExpiresAt = time.Unix(-10, 0) },
	} {
		sess := Session(t, now.Add(time.Hour))
		key := sess.IDHash
		mod(sess)
		check("PutSession("+name+")", s.PutSession(ctx, sess))
		if _, err := s.GetSession(ctx, key); !errors.Is(err, channel.ErrNotFound) {
			t.Errorf("an invalid PutSession (%s) stored a session: GetSession = %v", name, err)
		}
	}
	check("PutLogin(nil)", s.PutLogin(ctx, nil))
	for name, mod := range map[string]func(*access.Login){
		"empty state":  func(x *access.Login) { x.State = "" },
		"control char": func(x *access.Login) { x.State = "ab\x1bcd" },
		"no expiry":    func(x *access.Login) { x.ExpiresAt = time.Time{} },
	} {
		l := Login(t, now.Add(time.Hour))
		key := l.State
		mod(l)
		check("PutLogin("+name+")", s.PutLogin(ctx, l))
		if _, err := s.TakeLogin(ctx, key); !errors.Is(err, channel.ErrNotFound) {
			t.Errorf("an invalid PutLogin (%s) stored a login: TakeLogin = %v", name, err)
		}
	}
	// Errors about a login state do not repeat it: it is a secret until taken.
	secret := "s3cret-state\n" + randHex(t)
	if _, err := s.TakeLogin(ctx, secret); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("TakeLogin(control character) = %v; want an error that does not quote the state", err)
	}
}
