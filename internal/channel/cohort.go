package channel

// cohortBucket places a device in one of 100 buckets for a version: FNV-1a (64-bit) over
// the ASCII-lowercased device id, a zero byte and the version, finished with the splitmix64
// mixer (FNV's low bits alone are poorly spread), modulo 100. The bucket is sticky for a
// (device, version) pair and independent across versions, so each rollout picks a fresh
// sample of devices. It does not allocate.
func cohortBucket(deviceID, version string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(deviceID); i++ {
		c := deviceID[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= prime
	}
	h ^= 0
	h *= prime
	for i := 0; i < len(version); i++ {
		h ^= uint64(version[i])
		h *= prime
	}
	// splitmix64 finalizer.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h % 100
}

// InCohort reports whether the device deviceID is in the rollout cohort of version at
// percent: its sticky bucket (0..99, a hash of the device id and the version) is below
// percent. Percent 0 or less admits no device and 100 or more every device. Raising percent
// only adds devices: a device in the cohort at 10 stays in it at 20. Device ids compare
// case-insensitively (ASCII). It does not allocate and is safe for concurrent use.
func InCohort(deviceID, version string, percent int) bool {
	if percent <= 0 {
		return false
	}
	if percent >= 100 {
		return true
	}
	return cohortBucket(deviceID, version) < uint64(percent)
}
