package access

import "time"

// Session is a person signed in through single sign-on. The browser holds only an opaque
// random id in a cookie; the store keeps this record under the id's [HashToken], so every
// relay instance sharing the store sees it and deleting it signs the person out at once.
type Session struct {
	// IDHash is HashToken of the cookie's value.
	IDHash string `json:"id_hash"`
	// Kind is how the session's holder signed in: "" (or [Person]) through single sign-on;
	// [TokenKind] by presenting an API token (Subject is then the token's id and Name its
	// name; the token is checked again on every request, so revoking it ends the session);
	// [Bootstrap] by presenting the bootstrap token.
	Kind Kind `json:"kind,omitempty"`
	// Subject, Issuer, Email and Name come from the person's ID token.
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	Email   string `json:"email,omitempty"`
	Name    string `json:"name,omitempty"`
	// Grants are the roles the relay's SSO mapping gave the person at sign-in.
	Grants []Grant `json:"grants"`
	// CSRF is the token every state-changing form and request of this session must carry.
	CSRF string `json:"csrf"`
	// CreatedAt is the sign-in time; ExpiresAt = CreatedAt + the absolute lifetime.
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// LastSeen is refreshed at most once a minute; a session idle longer than the idle
	// timeout is refused.
	LastSeen time.Time `json:"last_seen"`
}

// Principal returns the session's holder as a principal: the person, or the API token or
// bootstrap token the session was exchanged for, named as that credential is named when
// it is presented directly.
func (s *Session) Principal() *Principal {
	switch s.Kind {
	case TokenKind:
		return &Principal{Kind: TokenKind, ID: s.Subject, Name: s.Name, Grants: s.Grants}
	case Bootstrap:
		return &Principal{Kind: Bootstrap, Grants: s.Grants}
	case Person:
	}
	return &Principal{Kind: Person, ID: s.Subject, Name: s.Name, Email: s.Email, Issuer: s.Issuer, Grants: s.Grants}
}

// Login is one sign-in in progress: created when the relay redirects a browser (or
// `ferry login`) to the identity provider, taken (read and deleted at once) when the
// provider redirects back, so a state value works once.
type Login struct {
	// State is the random value sent to the provider and expected back.
	State string `json:"state"`
	// Nonce is expected in the ID token; Verifier is the PKCE code verifier.
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// Return is the relay-relative path to go to after signing in (checked to be local).
	Return string `json:"return,omitempty"`
	// Browser is HashToken of a random value the relay set in a cookie when the login
	// started; the callback must come from the same browser (login CSRF).
	Browser string `json:"browser"`
	// CLIPort and CLIChallenge are set when `ferry login` started the sign-in: the relay
	// then sends the browser to http://127.0.0.1:CLIPort/callback with a one-time code
	// instead of setting a cookie, and hands the session only to the caller holding the
	// PKCE verifier whose S256 challenge is CLIChallenge.
	CLIPort      int    `json:"cli_port,omitempty"`
	CLIChallenge string `json:"cli_challenge,omitempty"`
	// Sealed is set on the record of a one-time code handed to `ferry login` (stored under a
	// hash of the code, never the code): the signed-in person, encrypted under a key derived
	// from the code, so the store alone cannot turn it into a session.
	Sealed    string    `json:"sealed,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SessionPrefix starts a session id that the relay hands to `ferry login` for use as a
// bearer token ("Authorization: Bearer ferrys_..."); browsers hold the same kind of id in
// the session cookie. Only its [HashToken] is stored.
const SessionPrefix = "ferrys_"

// SessionCookie is the name of the browser's session cookie.
const SessionCookie = "ferry_session"
