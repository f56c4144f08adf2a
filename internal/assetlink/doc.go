// Package assetlink asks GitHub for the short-lived download URLs of release assets in a
// private repository, so the relay can redirect devices to them without carrying the
// bytes or handing out a GitHub credential.
//
// GitHub answers GET /repos/{owner}/{repo}/releases/assets/{id} with
// Accept: application/octet-stream by a 302 to a signed object-store URL; [Linker.Link]
// makes that call without following the redirect and returns the URL with the expiry read
// from its query ([Expiry]). Credentials are a fine-grained token or a GitHub App
// installation whose tokens ghinstallation mints and refreshes.
//
//	l, err := assetlink.New("acme/app", assetlink.Options{Token: tok})
//	link, err := l.Link(ctx, 501) // link.URL, link.Expires
package assetlink
