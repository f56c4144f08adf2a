package control

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry/internal/channel"
)

// DownloadPath is the relay's download route for bundles of private repositories:
// DownloadPath + "/{app}/{version}/{asset name}" redirects to a short-lived URL GitHub
// signs for the asset (docs/relay.md#private-repositories).
const DownloadPath = "/dl"

// checkReleaseAccess refuses to start with an app whose release_access names a variable
// that is not set, or with release_access and no public URL to build download URLs with.
func checkReleaseAccess(cfg *channel.Config, publicURL string, getenv func(string) string) error {
	var errs []error
	some := false
	for i := range cfg.Apps {
		ra := cfg.Apps[i].ReleaseAccess
		if ra == nil {
			continue
		}
		some = true
		for _, v := range []struct{ key, env string }{{"private_key_env", ra.PrivateKeyEnv}, {"token_env", ra.TokenEnv}} {
			if v.env != "" && (getenv == nil || getenv(v.env) == "") {
				errs = append(errs, fmt.Errorf("app %q: release_access.%s names %s, which is not set in the environment (or is empty): set it to the %s", cfg.Apps[i].ID, v.key, v.env,
					map[string]string{"private_key_env": "GitHub App's private key (PEM)", "token_env": "fine-grained token (contents: read on " + cfg.Apps[i].Repository + ")"}[v.key]))
			}
		}
	}
	if !some {
		return errors.Join(errs...)
	}
	if u, err := url.Parse(publicURL); publicURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("an app has release_access but --public-url (FERRY_PUBLIC_URL) %q is not the http(s) address devices reach the relay at (e.g. https://relay.example.com): devices download private bundles through it", publicURL))
	}
	return errors.Join(errs...)
}

// validateAssets checks the release assets of a bundle from a private repository.
func validateAssets(b *channel.Bundle) []error {
	r := b.Assets
	if r == nil {
		return nil
	}
	var errs []error
	if !validRepository(r.Repository) {
		errs = append(errs, errors.New(`release_assets.repository must be "owner/name"`))
	}
	if len(b.Manifest) > 0 || b.ManifestURL != "" {
		errs = append(errs, errors.New("release_assets cannot carry a delta manifest: GitHub Releases cannot hold a bundle's per-file objects"))
	}
	seen := map[string]bool{}
	for _, x := range []struct {
		field string
		a     *channel.ReleaseAsset
	}{{"archive", &r.Archive}, {"signature", r.Signature}, {"provenance", r.Provenance}} {
		if x.a == nil {
			continue
		}
		if !validAssetName(x.a.Name) {
			errs = append(errs, fmt.Errorf("release_assets.%s.name %q must be a release asset name (1-255 letters, digits, '.', '_', '-', '+')", x.field, x.a.Name))
		} else if seen[x.a.Name] {
			errs = append(errs, fmt.Errorf("release_assets.%s.name %q is used twice", x.field, x.a.Name))
		}
		seen[x.a.Name] = true
		if x.a.ID <= 0 {
			errs = append(errs, fmt.Errorf("release_assets.%s.id must be GitHub's (positive) asset id", x.field))
		}
	}
	return errs
}

func validAssetName(s string) bool {
	if s == "" || len(s) > 255 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-+", c)) {
			return false
		}
	}
	return true
}

// privateDownloads points the download URLs of a private repository's bundle at the
// relay's download route. The app must have release_access, and the assets must be in the
// app's own repository.
func (a *API) privateDownloads(app *channel.App, b *channel.Bundle) error {
	r := b.Assets
	if r == nil {
		return nil
	}
	if app.ReleaseAccess == nil || a.publicURL == "" {
		return errorf(http.StatusUnprocessableEntity, "private_release_unconfigured",
			"app %q is published to a private repository, but the relay cannot read its releases: add release_access (a GitHub App installation or a fine-grained token) to the app in the relay's config and set --public-url (docs/relay.md#private-repositories)", app.ID)
	}
	if !strings.EqualFold(r.Repository, app.Repository) {
		return errorf(http.StatusForbidden, "repository_not_allowed", "release_assets.repository %q is not the app's repository %q", r.Repository, app.Repository)
	}
	link := func(name string) string {
		return a.publicURL + DownloadPath + "/" + url.PathEscape(b.AppID) + "/" + url.PathEscape(b.Version) + "/" + url.PathEscape(name)
	}
	b.URL = link(r.Archive.Name)
	b.SignatureURL, b.ProvenanceURL = "", ""
	if r.Signature != nil {
		b.SignatureURL = link(r.Signature.Name)
	}
	if r.Provenance != nil {
		b.ProvenanceURL = link(r.Provenance.Name)
	}
	return nil
}
