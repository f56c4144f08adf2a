package channel

// CompareVersions orders two bundle versions: -1, 0 or +1. Semantic versions (an optional
// "v", then major.minor.patch with optional pre-release and build) compare by semver
// precedence; anything else sorts before every semantic version and by byte order among
// itself. Ties under semver (build metadata only) break by byte order, so the order is total
// and CompareVersions(a, b) == 0 only when a == b.
func CompareVersions(a, b string) int {
	panic("todo")
}
