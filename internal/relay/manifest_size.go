package relay

import (
	"context"
	"fmt"
	"net/http"
	"slices"

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
//
// Only versions a device could be offered are answered (see offerable); any other, a pull
// request's build registered without a channel or one only an internal channel serves,
// gets the same answer as a version never registered, so unauthenticated callers cannot
// list the files and URLs of builds not meant for them. The answer comes from the cached
// snapshot: no store round trip, whatever version is asked for. A request asking about more
// files than the version has, plus manifestSizeSlack, is refused: the plugin only asks
// about the files of a manifest the relay sent it, so the answer (which echoes every entry)
// stays the size of the version's manifest.
func (s *Server) manifestSize(ctx context.Context, w http.ResponseWriter, _ *http.Request, body string) {
	req, err := parseObject(body)
	if err != nil {
		writeRequestError(ctx, w, err, channel.KindFailed)
		return
	}
	e, ok := s.apps[req.Info.AppID]
	if !ok {
		respond(ctx, w, http.StatusOK, errorBody{Error: codeUnknownApp, Message: "App " + req.Info.AppID + " is not served by this update server", Kind: channel.KindFailed})
		return
	}
	if !s.deviceAllowed(ctx, w, req.Info.AppID, req.Info.DeviceID) {
		return
	}
	if req.Version == "" {
		respond(ctx, w, http.StatusOK, errorBody{Error: "missing_version", Message: "version is required", Kind: channel.KindFailed})
		return
	}
	snap, err := s.snapshot(ctx, e)
	if err != nil {
		respond(ctx, w, http.StatusOK, errorBody{Error: codeUnavailable, Message: "The update server cannot reach its store; try again later", Kind: channel.KindFailed})
		return
	}
	b := snap.Bundles[req.Version]
	if b == nil || !offerable(snap, req.Version) {
		respond(ctx, w, http.StatusOK, errorBody{Error: "no_bundle", Message: "Version " + req.Version + " does not exist", Kind: channel.KindFailed})
		return
	}
	if len(req.Manifest) > len(b.Manifest)+manifestSizeSlack {
		respond(ctx, w, http.StatusBadRequest, errorBody{Error: "too_many_files",
			Message: fmt.Sprintf("manifest lists %d files; version %s has %d", len(req.Manifest), req.Version, len(b.Manifest)), Kind: channel.KindFailed})
		return
	}
	respond(ctx, w, http.StatusOK, sizeManifest(b, req.Manifest))
}

// manifestSizeSlack is how many more files than the version has a manifest_size request
// may ask about (they are answered as unknown).
const manifestSizeSlack = 64

// offerable reports whether version could be offered to some device by [channel.Decide]
// on snap: a device may use the app's default channel and any channel whose effective
// policy allows device self-set (Decide's step 2), and on such a channel it may be offered
// the stable version, the rollout's, or a version of the history older than the stable one
// (the fallbacks of step 5). Platform, emulator, build and native-range gates are left out:
// the caller chooses the device fields they check.
func offerable(snap *channel.Snapshot, version string) bool {
	for name, st := range snap.States {
		if st == nil || st.Version == "" {
			continue
		}
		if name != snap.App.DefaultChannel {
			if pol, _, _ := snap.Channel(name); !pol.AllowDeviceSelfSet {
				continue
			}
		}
		if st.Version == version || (st.Rollout != nil && st.Rollout.Version == version) {
			return true
		}
		if slices.Contains(st.History, version) && channel.CompareVersions(version, st.Version) < 0 {
			return true
		}
	}
	return false
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
