package archive

import "testing"

func TestFormatSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3584: "3.5 KiB",
		1 << 20: "1.00 MiB", 1310720: "1.25 MiB", 2 << 30: "2.00 GiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
