package relay

import (
	"context"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"

	"github.com/ferryhq/ferry/internal/channel"
)

// The channel endpoint (docs/protocol.md §3). For current plugins the channel is client-held: the
// plugin persists what these calls return and sends it as defaultChannel in every update
// check, so the relay keeps no per-device channel state. Errors are HTTP 200 with
// {"error","message"}; every field has the JSON type iOS decodes strictly.

// Codes of the channel endpoint (Capgo's names, so apps' error handling carries over).
const (
	codeChannelNotFound   = "channel_not_found"
	codeSelfSetNotAllowed = "channel_self_set_not_allowed"
	codeMissingChannel    = "missing_channel"
)

// channelSetResponse answers POST /channel_self.
type channelSetResponse struct {
	Status   string `json:"status"`
	AllowSet bool   `json:"allowSet"`
	Message  string `json:"message,omitempty"`
}

// channelGetResponse answers PUT /channel_self.
type channelGetResponse struct {
	Channel  string `json:"channel"`
	Status   string `json:"status"` // "default" or "override"
	AllowSet bool   `json:"allowSet"`
}

// channelListEntry is one element of the bare array GET /channel_self answers. ID must be
// a JSON number (Android throws otherwise).
type channelListEntry struct {
	ID           uint32 `json:"id"`
	Name         string `json:"name"`
	Public       bool   `json:"public"`
	AllowSelfSet bool   `json:"allow_self_set"`
}

// channelID is a channel's stable numeric id: the same for a name across restarts and
// instances, unaffected by adding or removing other channels.
func channelID(app, name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return h.Sum32()
}

// channelSet answers POST /channel_self (setChannel): it checks that the channel exists and
// that this device may choose it, and replies {"status":"ok"} or an error.
func (s *Server) channelSet(ctx context.Context, w http.ResponseWriter, r *http.Request, body string) {
	req, e, snap, ok := s.channelRequest(ctx, w, r, body, false)
	if !ok {
		return
	}
	name := req.Channel
	if name == "" {
		respond(ctx, w, http.StatusOK, errorBody{Error: codeMissingChannel, Message: "channel is required"})
		return
	}
	pol, _, known := snap.Channel(name)
	switch {
	case !known:
		respond(ctx, w, http.StatusOK, errorBody{Error: codeChannelNotFound, Message: "Channel " + name + " does not exist"})
	case name != e.app.DefaultChannel && !pol.AllowDeviceSelfSet:
		respond(ctx, w, http.StatusOK, errorBody{Error: codeSelfSetNotAllowed, Message: "Channel " + name + " does not allow devices to choose it"})
	case !eligible(pol, &req.Info):
		respond(ctx, w, http.StatusOK, errorBody{Error: codeSelfSetNotAllowed, Message: "Channel " + name + " does not serve this device (platform, emulator or build type)"})
	default:
		respond(ctx, w, http.StatusOK, channelSetResponse{Status: "ok", AllowSet: true})
	}
}

// channelGet answers PUT /channel_self (getChannel) with the channel the device is on: the
// one it sent as defaultChannel when that channel exists and the device may be on it, else
// the app's default channel. The plugin persists the answer.
func (s *Server) channelGet(ctx context.Context, w http.ResponseWriter, r *http.Request, body string) {
	req, e, snap, ok := s.channelRequest(ctx, w, r, body, false)
	if !ok {
		return
	}
	name, status := e.app.DefaultChannel, "default"
	if ch := req.Info.DefaultChannel; ch != "" && ch != e.app.DefaultChannel {
		if pol, _, known := snap.Channel(ch); known && pol.AllowDeviceSelfSet && eligible(pol, &req.Info) {
			name, status = ch, "override"
		}
	}
	pol, _, _ := snap.Channel(name)
	respond(ctx, w, http.StatusOK, channelGetResponse{Channel: name, Status: status, AllowSet: pol.AllowDeviceSelfSet})
}

// channelList answers GET /channel_self (listChannels) with a bare array of the channels the
// device may see: public or self-settable, and serving its platform and build type.
func (s *Server) channelList(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) {
	req, e, snap, ok := s.channelRequest(ctx, w, r, "", true)
	if !ok {
		return
	}
	names := channelNames(e.app, snap)
	list := make([]channelListEntry, 0, len(names))
	for _, name := range names {
		pol, _, _ := snap.Channel(name)
		if !(pol.Public || pol.AllowDeviceSelfSet) || !eligible(pol, &req.Info) {
			continue
		}
		list = append(list, channelListEntry{ID: channelID(e.app.ID, name), Name: name, Public: pol.Public, AllowSelfSet: pol.AllowDeviceSelfSet})
	}
	respond(ctx, w, http.StatusOK, list)
}

// channelUnset answers DELETE /channel_self (unsetChannel of plugins before 7.34): the
// channel lives on the device, so there is nothing to delete; it replies {"status":"ok"}.
func (s *Server) channelUnset(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) {
	if _, _, _, ok := s.channelRequest(ctx, w, r, "", true); !ok {
		return
	}
	respond(ctx, w, http.StatusOK, statusOK{Status: "ok"})
}

// channelRequest decodes a channel call (body, or query string for GET and DELETE) and
// finds its app and snapshot. It answers the request itself and returns ok=false when it
// cannot go on.
func (s *Server) channelRequest(ctx context.Context, w http.ResponseWriter, r *http.Request, body string, query bool) (*deviceRequest, *appEntry, *channel.Snapshot, bool) {
	var req *deviceRequest
	var err error
	if query {
		req, err = parseQuery(r.URL.Query())
	} else {
		req, err = parseObject(body)
	}
	if err != nil {
		writeRequestError(ctx, w, err, "")
		return nil, nil, nil, false
	}
	e, ok := s.apps[req.Info.AppID]
	if !ok {
		respond(ctx, w, http.StatusOK, errorBody{Error: codeUnknownApp, Message: "App " + req.Info.AppID + " is not served by this update server"})
		return nil, nil, nil, false
	}
	snap, err := s.snapshot(ctx, e)
	if err != nil {
		respond(ctx, w, http.StatusOK, errorBody{Error: codeUnavailable, Message: "The update server cannot reach its store; try again later"})
		return nil, nil, nil, false
	}
	return req, e, snap, true
}

// channelNames lists the app's channels: the configured ones (not the "*" pattern) and any
// other channel a state exists for, sorted.
func channelNames(app *channel.App, snap *channel.Snapshot) []string {
	names := make([]string, 0, len(app.Channels)+len(snap.States))
	for name := range app.Channels {
		if name != "*" {
			names = append(names, name)
		}
	}
	for name := range snap.States {
		if _, ok := app.Channels[name]; !ok {
			if _, _, known := snap.Channel(name); known {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// eligible reports whether pol serves the device's platform and build type.
func eligible(pol channel.Policy, info *channel.DeviceInfo) bool {
	if len(pol.Platforms) > 0 && !slices.Contains(pol.Platforms, info.Platform) {
		return false
	}
	if pol.DenyEmulator && info.IsEmulator {
		return false
	}
	if pol.DenyDev && !info.IsProd {
		return false
	}
	return true
}
