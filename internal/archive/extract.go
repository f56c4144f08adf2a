package archive

import "context"

// ExtractOptions bounds an extraction.
type ExtractOptions struct {
	MaxFiles int
	MaxBytes int64
}

// Extract unzips zipPath into dest with the plugin's path rules.
func Extract(ctx context.Context, zipPath, dest string, opts ExtractOptions) error {
	return errNotImplemented
}
