package archive

import "fmt"

// FormatSize formats a byte count for people, as the action's summary and ferry's reports
// show bundle and file sizes: "512 B", "3.5 KiB", "1.25 MiB", "2.00 GiB". It lives here
// because both binaries import archive, and sizes they show are of bundles.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
