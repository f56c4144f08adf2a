package relay

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// manifestSizeResponse answers POST /updates/manifest_size (docs/protocol.md §1.5).
type manifestSizeResponse struct {
	TotalSize    int64               `json:"totalSize"`
	KnownFiles   int                 `json:"knownFiles"`
	UnknownFiles int                 `json:"unknownFiles"`
	Files        []manifestSizeEntry `json:"files"`
}

type manifestSizeEntry struct {
	FileName    string `json:"file_name"`
	FileHash    string `json:"file_hash"`
	DownloadURL string `json:"download_url"`
	Size        *int64 `json:"size,omitempty"`
	Error       string `json:"error,omitempty"`
}

// manifestSize answers POST /updates/manifest_size: the byte size of each manifest file the
// device asks about (all of the bundle's when it lists none), from the sizes recorded at
// registration. Files the bundle does not list, or whose size is unknown, are counted as
// unknown with an error code.
func (s *Server) manifestSize(c *gin.Context) {
	body, ok := readBody(c)
	if !ok {
		return
	}
	req, err := parseObject(body)
	if err != nil {
		writeRequestError(c, err, channel.KindFailed)
		return
	}
	e, ok := s.apps[req.Info.AppID]
	if !ok {
		writeJSON(c, http.StatusOK, errorBody{Error: codeUnknownApp, Message: "App " + req.Info.AppID + " is not served by this update server", Kind: channel.KindFailed})
		return
	}
	if !s.deviceAllowed(c, req.Info.AppID, req.Info.DeviceID) {
		return
	}
	if req.Version == "" {
		writeJSON(c, http.StatusOK, errorBody{Error: "missing_version", Message: "version is required", Kind: channel.KindFailed})
		return
	}
	b, err := s.bundle(c.Request.Context(), e, req.Version)
	switch {
	case errors.Is(err, channel.ErrNotFound):
		writeJSON(c, http.StatusOK, errorBody{Error: "no_bundle", Message: "Version " + req.Version + " does not exist", Kind: channel.KindFailed})
		return
	case err != nil:
		writeJSON(c, http.StatusOK, errorBody{Error: codeUnavailable, Message: "The update server cannot reach its store; try again later", Kind: channel.KindFailed})
		return
	}
	writeJSON(c, http.StatusOK, sizeManifest(b, req.Manifest))
}

func sizeManifest(b *channel.Bundle, asked []channel.ManifestEntry) manifestSizeResponse {
	known := make(map[string]channel.ManifestEntry, len(b.Manifest))
	for _, f := range b.Manifest {
		known[f.FileName] = f
	}
	if len(asked) == 0 {
		asked = b.Manifest
	}
	resp := manifestSizeResponse{Files: make([]manifestSizeEntry, 0, len(asked))}
	for _, a := range asked {
		out := manifestSizeEntry{FileName: a.FileName, FileHash: a.FileHash, DownloadURL: a.DownloadURL}
		f, ok := known[a.FileName]
		switch {
		case !ok || (a.FileHash != "" && a.FileHash != f.FileHash):
			out.Error = "file_not_found"
		case f.Size <= 0:
			out.Error = "size_unknown"
		default:
			size := f.Size
			out.Size = &size
			if out.DownloadURL == "" {
				out.DownloadURL = f.DownloadURL
			}
			if out.FileHash == "" {
				out.FileHash = f.FileHash
			}
		}
		if out.Error != "" {
			resp.UnknownFiles++
		} else {
			resp.KnownFiles++
			resp.TotalSize += *out.Size
		}
		resp.Files = append(resp.Files, out)
	}
	return resp
}

// bundle returns one bundle of the app, from the snapshot when it is there, else from the
// store (one round trip).
func (s *Server) bundle(ctx context.Context, e *appEntry, version string) (*channel.Bundle, error) {
	if snap, err := s.snapshot(ctx, e); err == nil {
		if b, ok := snap.Bundles[version]; ok {
			return b, nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	b, err := s.store.GetBundle(cctx, e.app.ID, version)
	if err != nil && !errors.Is(err, channel.ErrNotFound) {
		s.metrics.storeErrors.WithLabelValues("get_bundle").Inc()
	}
	return b, err
}
