package channel

// NativeAllows reports whether the semver range rng admits the native app version
// versionBuild.
func NativeAllows(rng, versionBuild string) (bool, error) {
	panic("todo")
}

// ParseRange checks that rng is a valid native-version range.
func ParseRange(rng string) error {
	panic("todo")
}
