package channel

import "github.com/ferryhq/ferry/internal/access"

// Config is the relay's app configuration (the YAML file of docs/architecture.md §3.4). The relay
// loads it from YAML; this package validates it and answers questions about it.
type Config struct {
	Apps []App `yaml:"apps" json:"apps"`
	// Access configures who may use the admin API: the bootstrap token and single sign-on
	// (docs/access.md).
	Access *access.Config `yaml:"access" json:"access,omitempty"`
	// RolloutPlans names the staged rollout plans rules and the admin API may start
	// (docs/rollouts.md).
	RolloutPlans map[string]Plan `yaml:"rollout_plans" json:"rollout_plans,omitempty"`
}

// App configures one app id.
type App struct {
	ID string `yaml:"id" json:"id"`
	// Repository ("owner/name") is the only repository that may publish or promote the app.
	Repository string `yaml:"repository" json:"repository"`
	// RepositoryID, when set, pins the repository by GitHub's numeric id as well as by
	// name: an OIDC token whose repository_id claim, or a push whose repository.id, differs
	// is refused even if the name matches (a repository deleted and re-created under the
	// same name gets a new id). Optional but recommended.
	RepositoryID int64 `yaml:"repository_id" json:"repository_id,omitempty"`
	// WebhookSecretEnv names the environment variable holding this app's GitHub webhook
	// secret. A push promotes the app only if it is signed with that secret; the relay-wide
	// FERRY_WEBHOOK_SECRET then no longer applies to the app. Empty means the relay-wide
	// secret (the documented fallback). The relay refuses to start when the variable is
	// unset or empty.
	WebhookSecretEnv string `yaml:"webhook_secret_env" json:"webhook_secret_env,omitempty"`
	// HMACSecretEnv names the environment variable holding this app's HMAC registration
	// secret. An HMAC-signed registration of the app is accepted only under that secret;
	// the relay-wide FERRY_HMAC_SECRET then no longer applies to the app. Empty means the
	// relay-wide secret. The relay refuses to start when the variable is unset or empty.
	HMACSecretEnv string `yaml:"hmac_secret_env" json:"hmac_secret_env,omitempty"`
	// DefaultChannel serves devices that name no channel.
	DefaultChannel string `yaml:"default_channel" json:"default_channel"`
	// Channels lists the app's channels and their policies. The key "*" gives the policy of
	// channels not listed (for example those a rule's capture names); without it, unlisted
	// channels take the zero Policy.
	Channels map[string]Policy `yaml:"channels" json:"channels"`
	// Rules map refs to channels; the first match wins.
	Rules []Rule `yaml:"rules" json:"rules"`
	// Notifications lists the receivers of the app's outgoing notifications: promotions,
	// rollbacks and rollout changes (docs/notifications.md).
	Notifications []Notification `yaml:"notifications" json:"notifications,omitempty"`
	// ReleaseAccess, when set, lets the relay read the releases of Repository when it is
	// private, so devices can download bundles published there through the relay's download
	// route (docs/relay.md#private-repositories). Nil: the app's bundles must have public URLs.
	ReleaseAccess *ReleaseAccess `yaml:"release_access" json:"release_access,omitempty"`
}

// ReleaseAccess is the GitHub credential the relay reads an app's private releases with:
// a GitHub App installation (AppID, InstallationID and PrivateKeyEnv), preferred, or a
// fine-grained personal access token (TokenEnv). Exactly one of the two is set. The
// variables are read at start-up; the credential needs only `contents: read` on the
// repository.
type ReleaseAccess struct {
	// AppID and InstallationID identify the GitHub App installation on the repository.
	AppID          int64 `yaml:"app_id" json:"app_id,omitempty"`
	InstallationID int64 `yaml:"installation_id" json:"installation_id,omitempty"`
	// PrivateKeyEnv names the variable holding the App's private key (PEM).
	PrivateKeyEnv string `yaml:"private_key_env" json:"private_key_env,omitempty"`
	// TokenEnv names the variable holding a fine-grained token.
	TokenEnv string `yaml:"token_env" json:"token_env,omitempty"`
	// APIURL is the REST API's base (GitHub Enterprise Server: https://HOST/api/v3); empty
	// means https://api.github.com.
	APIURL string `yaml:"api_url" json:"api_url,omitempty"`
}

// Rule maps refs matching the glob Ref to Channel. A "*" in Ref matches within one path
// segment and "**" across segments; Channel may be "$1" (or contain it) to name the
// channel by the first capture, e.g. {ref: "refs/tags/channel/*", channel: "$1"}.
type Rule struct {
	Ref     string `yaml:"ref" json:"ref"`
	Channel string `yaml:"channel" json:"channel"`
	// Plan, when set, names a plan of rollout_plans: a promotion through this rule starts
	// that plan for the version instead of serving it to every device at once.
	Plan string `yaml:"plan" json:"plan,omitempty"`
}

// Policy is a channel's policy. The zero value is the documented default: private (devices
// reach it only as the app's default channel or when allowed to self-set it), emulators and
// development builds allowed, auto-update never disabled, every platform.
type Policy struct {
	// Public channels are listed to devices by GET /channel_self.
	Public bool `yaml:"public" json:"public"`
	// AllowDeviceSelfSet lets a device choose this channel with setChannel().
	AllowDeviceSelfSet bool `yaml:"allow_device_self_set" json:"allow_device_self_set"`
	// DenyEmulator and DenyDev refuse emulators and non-production builds. In YAML they are
	// written as allow_emulator and allow_dev (default true); see [Policy.UnmarshalYAML].
	DenyEmulator bool `yaml:"-" json:"deny_emulator,omitempty"`
	DenyDev      bool `yaml:"-" json:"deny_dev,omitempty"`
	// DisableAutoUpdate is none (default), patch, minor or major: the kind of semver change
	// that devices will not auto-update across (docs/protocol.md §1.3(c) disable_auto_update_to_*).
	DisableAutoUpdate string `yaml:"disable_auto_update" json:"disable_auto_update,omitempty"`
	// Platforms lists the platforms served (ios, android, electron); empty means all.
	Platforms []string `yaml:"platforms" json:"platforms,omitempty"`
	// AllowRefs lists ref patterns (the globs of [Rule]) whose builds may name this channel
	// explicitly in a registration authenticated per app (OIDC), in addition to the refs
	// the app's rules map to it (see [App.RefMayTarget]). It is read from the configuration
	// file only; an admin policy override does not change it.
	AllowRefs []string `yaml:"allow_refs" json:"allow_refs,omitempty"`
}
