// Package access is Ferry's authorization model: roles granted per app, the principals
// that hold them (API tokens, people signed in through single sign-on, the bootstrap
// token), and the records the relay stores for them (hashed tokens, sessions, login
// attempts). It does no I/O: the control plane resolves a request's principal and asks
// [Principal.Can]; the store persists [Token], [Session] and [Login].
//
// The model is documented for users in docs/access.md.
package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Role is a named set of permissions.
type Role string

// The roles. Each of viewer, deployer and admin includes the one before; publisher is
// separate, so a workflow that registers bundles cannot promote them by hand.
const (
	// Viewer reads channels, bundles, stats and the audit log.
	Viewer Role = "viewer"
	// Deployer is a viewer who may also promote, roll back and drive rollouts.
	Deployer Role = "deployer"
	// Admin is a deployer who may also change policies, manage tokens and delete bundles.
	Admin Role = "admin"
	// Publisher registers bundles (CI), nothing else.
	Publisher Role = "publisher"
)

// Roles lists every role, in the order the docs present them.
var Roles = []Role{Viewer, Deployer, Admin, Publisher}

// Permission is one thing a request may need.
type Permission int

// The permissions.
const (
	// Read lets a principal list channels, bundles, stats and audit entries.
	Read Permission = iota + 1
	// Deploy lets a principal promote, roll back, and set, pause, resume or complete a rollout.
	Deploy
	// Manage lets a principal change policies, create and revoke tokens, delete bundles.
	Manage
	// Publish lets a principal register bundles.
	Publish
)

func (p Permission) String() string {
	switch p {
	case Read:
		return "read"
	case Deploy:
		return "deploy"
	case Manage:
		return "manage"
	case Publish:
		return "publish"
	}
	return fmt.Sprintf("permission(%d)", int(p))
}

// Valid reports whether r is one of [Roles].
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Allows reports whether the role includes permission p.
func (r Role) Allows(p Permission) bool {
	switch r {
	case Viewer:
		return p == Read
	case Deployer:
		return p == Read || p == Deploy
	case Admin:
		return p == Read || p == Deploy || p == Manage
	case Publisher:
		return p == Publish
	}
	return false
}

// MinimumRole is the least role that includes p, for error messages.
func MinimumRole(p Permission) Role {
	for _, r := range Roles {
		if r.Allows(p) {
			return r
		}
	}
	return ""
}

// AllApps is the App of a grant that applies to every app.
const AllApps = "*"

// Grant gives Role on App (an app id, or [AllApps]).
type Grant struct {
	App  string `json:"app" yaml:"app"`
	Role Role   `json:"role" yaml:"role"`
}

func (g Grant) String() string { return g.App + ":" + string(g.Role) }

// ParseGrant reads "APP:ROLE" or "ROLE" (every app).
func ParseGrant(s string) (Grant, error) {
	app, role, ok := strings.Cut(s, ":")
	if !ok {
		app, role = AllApps, s
	}
	g := Grant{App: app, Role: Role(role)}
	return g, g.Check()
}

// Check reports what is wrong with g, if anything.
func (g Grant) Check() error {
	var errs []error
	if g.App == "" {
		errs = append(errs, errors.New("grant has no app (use \"*\" for every app)"))
	}
	if !g.Role.Valid() {
		errs = append(errs, fmt.Errorf("unknown role %q (roles: viewer, deployer, admin, publisher)", g.Role))
	}
	return errors.Join(errs...)
}

// Kind says how a principal authenticated.
type Kind string

// The kinds of principal.
const (
	// Bootstrap is the FERRY_ADMIN_TOKEN: admin of every app, the break-glass credential.
	Bootstrap Kind = "bootstrap"
	// TokenKind is an API token created through the admin API.
	TokenKind Kind = "token"
	// Person is someone signed in through single sign-on.
	Person Kind = "person"
)

// Principal is who a request comes from, with what it may do.
type Principal struct {
	Kind Kind
	// ID is the token id, or the person's subject at their issuer.
	ID string
	// Name is the token's name or the person's display name.
	Name string
	// Email and Issuer are set for people.
	Email  string
	Issuer string
	Grants []Grant
}

// Can reports whether the principal may do p on app.
func (p *Principal) Can(app string, perm Permission) bool {
	if p == nil {
		return false
	}
	for _, g := range p.Grants {
		if (g.App == AllApps || g.App == app) && g.Role.Allows(perm) {
			return true
		}
	}
	return false
}

// Apps returns the apps the principal may read, or nil and true for every app.
func (p *Principal) Apps() (apps []string, all bool) {
	for _, g := range p.Grants {
		if !g.Role.Allows(Read) {
			continue
		}
		if g.App == AllApps {
			return nil, true
		}
		if !slices.Contains(apps, g.App) {
			apps = append(apps, g.App)
		}
	}
	return apps, false
}
