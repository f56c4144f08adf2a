package relaytest

import (
	"fmt"

	"github.com/ferryhq/ferry/internal/testpeers"
)

// SSOUsers are the people tests start the test OpenID Provider with
// (testpeers.OPOptions.Users). [SSOConfig] maps them: Ana is an admin of every app, Dev a
// viewer of com.example.app, Bob has no role, Eve's domain is not allowed, and Uno's email is
// not verified.
var SSOUsers = []testpeers.OPUser{
	{ID: "u-ana", Username: "ana", Password: "ana-pass", FirstName: "Ana", LastName: "Admin", Email: "ana@example.com", EmailVerified: true},
	{ID: "u-dev", Username: "dev", Password: "dev-pass", FirstName: "Dev", LastName: "Eloper", Email: "dev@example.com", EmailVerified: true},
	{ID: "u-bob", Username: "bob", Password: "bob-pass", FirstName: "Bob", LastName: "Nobody", Email: "bob@example.com", EmailVerified: true},
	{ID: "u-eve", Username: "eve", Password: "eve-pass", FirstName: "Eve", LastName: "Outside", Email: "eve@elsewhere.test", EmailVerified: true},
	{ID: "u-uno", Username: "uno", Password: "uno-pass", FirstName: "Uno", LastName: "Verified", Email: "uno@example.com", EmailVerified: false},
}

// SSOSecretEnv is the variable [SSOConfig] names for the client secret; a test's Getenv
// answers it with testpeers.OPWebClientSecret.
const SSOSecretEnv = "FERRY_TEST_SSO_SECRET"

// SSOConfig returns the access section of a relay configuration (to append to its apps)
// that signs people in through the provider at issuer as clientID, for a relay at
// publicURL, with the roles [SSOUsers] describes. More keys of the sso section may follow
// it, indented by four spaces.
func SSOConfig(issuer, publicURL, clientID string) string {
	return fmt.Sprintf(`
access:
  sso:
    issuer: %q
    client_id: %q
    client_secret_env: %s
    public_url: %q
    allowed_domains: [example.com]
    roles:
      - email: ana@example.com
        grants: ["*:admin"]
      - email: dev@example.com
        grants: ["com.example.app:viewer"]
      - email: eve@elsewhere.test
        grants: ["*:admin"]
      - email: uno@example.com
        grants: ["*:admin"]
`, issuer, clientID, SSOSecretEnv, publicURL)
}
