package access

import (
	"slices"
	"strings"
	"testing"
)

// TestRoles is the permission table of docs/access.md: each role against each permission.
func TestRoles(t *testing.T) {
	t.Parallel()
	perms := []Permission{Read, Deploy, Manage, Publish}
	want := map[Role][]Permission{
		Viewer:    {Read},
		Deployer:  {Read, Deploy},
		Admin:     {Read, Deploy, Manage},
		Publisher: {Publish},
		"owner":   nil, // not a role
		"":        nil,
	}
	for role, allowed := range want {
		for _, p := range perms {
			if got := role.Allows(p); got != slices.Contains(allowed, p) {
				t.Errorf("%q.Allows(%s) = %v, want %v", role, p, got, !got)
			}
		}
		if got := role.Valid(); got != (allowed != nil) {
			t.Errorf("%q.Valid() = %v", role, got)
		}
		if role.Allows(Permission(0)) || role.Allows(Permission(99)) {
			t.Errorf("%q allows a permission that does not exist", role)
		}
	}
	for _, r := range Roles {
		if _, ok := want[r]; !ok {
			t.Errorf("role %q is not in the table", r)
		}
	}
	// Each of viewer, deployer, admin includes the one before.
	for i := 1; i < 3; i++ {
		for _, p := range perms {
			if Roles[i-1].Allows(p) && !Roles[i].Allows(p) {
				t.Errorf("%s allows %s but %s does not", Roles[i-1], p, Roles[i])
			}
		}
	}
}

func TestMinimumRole(t *testing.T) {
	t.Parallel()
	for p, want := range map[Permission]Role{Read: Viewer, Deploy: Deployer, Manage: Admin, Publish: Publisher, Permission(42): ""} {
		if got := MinimumRole(p); got != want {
			t.Errorf("MinimumRole(%s) = %q, want %q", p, got, want)
		}
	}
}

func TestPermissionString(t *testing.T) {
	t.Parallel()
	for p, want := range map[Permission]string{Read: "read", Deploy: "deploy", Manage: "manage", Publish: "publish", Permission(7): "permission(7)"} {
		if got := p.String(); got != want {
			t.Errorf("Permission(%d).String() = %q, want %q", int(p), got, want)
		}
	}
}

func TestParseGrant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Grant
	}{
		{"admin", Grant{App: AllApps, Role: Admin}},
		{"*:viewer", Grant{App: AllApps, Role: Viewer}},
		{"com.example.app:deployer", Grant{App: "com.example.app", Role: Deployer}},
		{"com.example.app:publisher", Grant{App: "com.example.app", Role: Publisher}},
	} {
		got, err := ParseGrant(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseGrant(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParseGrant(got.String()); err != nil || back != got {
			t.Errorf("ParseGrant(%q.String()) = %+v, %v", got, back, err)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "unknown role"},
		{"owner", "unknown role \"owner\""},
		{"Admin", "unknown role"},
		{":admin", "no app"},
		{"app:", "unknown role \"\""},
		{":", "no app"},
		{"app:admin:x", "unknown role \"admin:x\""},
	} {
		if _, err := ParseGrant(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseGrant(%q) = %v, want an error containing %q", tc.in, err, tc.msg)
		}
	}
	// Both problems are reported at once.
	err := Grant{}.Check()
	if err == nil || !strings.Contains(err.Error(), "no app") || !strings.Contains(err.Error(), "unknown role") {
		t.Errorf("Grant{}.Check() = %v, want both problems", err)
	}
}

func TestPrincipal(t *testing.T) {
	t.Parallel()
	p := &Principal{Kind: TokenKind, Grants: []Grant{
		{App: "a", Role: Deployer},
		{App: "b", Role: Viewer},
		{App: "c", Role: Publisher},
		{App: "a", Role: Viewer},
	}}
	for _, tc := range []struct {
		app  string
		perm Permission
		want bool
	}{
		{"a", Read, true}, {"a", Deploy, true}, {"a", Manage, false}, {"a", Publish, false},
		{"b", Read, true}, {"b", Deploy, false},
		{"c", Publish, true}, {"c", Read, false},
		{"d", Read, false}, {"*", Read, false},
	} {
		if got := p.Can(tc.app, tc.perm); got != tc.want {
			t.Errorf("Can(%q, %s) = %v, want %v", tc.app, tc.perm, got, tc.want)
		}
	}
	apps, all := p.Apps()
	if all || !slices.Equal(apps, []string{"a", "b"}) {
		t.Errorf("Apps() = %v, %v; want [a b] (c only publishes), false", apps, all)
	}

	every := &Principal{Kind: Bootstrap, Grants: []Grant{{App: "c", Role: Viewer}, {App: AllApps, Role: Admin}}}
	if !every.Can("anything", Manage) || every.Can("anything", Publish) {
		t.Error("an admin of every app: Can(manage) must hold and Can(publish) must not")
	}
	if apps, all := every.Apps(); !all || apps != nil {
		t.Errorf("Apps() of an every-app grant = %v, %v; want nil, true", apps, all)
	}
	publisher := &Principal{Grants: []Grant{{App: AllApps, Role: Publisher}}}
	if apps, all := publisher.Apps(); all || len(apps) != 0 {
		t.Errorf("Apps() of a publisher = %v, %v; want none (publishing is not reading)", apps, all)
	}
	var none *Principal
	if none.Can("a", Read) {
		t.Error("a nil principal can read")
	}
	if (&Principal{}).Can("a", Read) {
		t.Error("a principal without grants can read")
	}
}

func TestSessionPrincipal(t *testing.T) {
	t.Parallel()
	s := &Session{Subject: "sub-1", Issuer: "https://idp.example", Email: "ana@example.com", Name: "Ana",
		Grants: []Grant{{App: "a", Role: Admin}}}
	p := s.Principal()
	if p.Kind != Person || p.ID != s.Subject || p.Name != s.Name || p.Email != s.Email || p.Issuer != s.Issuer || !slices.Equal(p.Grants, s.Grants) {
		t.Errorf("Principal() = %+v, want the session's person", p)
	}
	if !p.Can("a", Manage) || p.Can("b", Read) {
		t.Error("the session's principal does not have exactly its grants")
	}
}
