package device

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// ChannelAnswer is the answer to setChannel (POST) and getChannel (PUT) on /channel_self.
type ChannelAnswer struct {
	Status   string `json:"status,omitempty"`
	Channel  string `json:"channel,omitempty"`
	Message  string `json:"message,omitempty"`
	Error    string `json:"error,omitempty"`
	Unset    bool   `json:"unset,omitempty"`
	AllowSet bool   `json:"allowSet,omitempty"`
}

// ChannelInfo is one entry of listChannels. ID must be a JSON number (Android throws
// otherwise), which decoding into an int64 enforces.
type ChannelInfo struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	Public       bool   `json:"public"`
	AllowSelfSet bool   `json:"allow_self_set"`
}

// ChannelError is a channel call refused by the relay with {"error","message"}.
type ChannelError struct {
	Code    string
	Message string
}

func (e *ChannelError) Error() string { return "channel refused: " + e.Code + ": " + e.Message }

// SetChannel asks the relay to put the device on ch (POST channelUrl with the info object
// plus "channel"). On success the device stores ch locally and sends it as defaultChannel
// from then on; an answer with "unset":true clears the local channel instead. A refusal
// (any status with an "error") returns *[ChannelError] and changes nothing.
func (c *Client) SetChannel(ctx context.Context, ch string) (*ChannelAnswer, error) {
	body := struct {
		wireInfo
		Channel string `json:"channel"`
	}{toWire(c.info()), ch}
	req, err := c.newRequest(ctx, http.MethodPost, c.ChannelURL, body)
	if err != nil {
		return nil, fmt.Errorf("set channel: %w", err)
	}
	var ans ChannelAnswer
	_, err = c.do(req, &ans)
	if ans.Error != "" {
		return &ans, &ChannelError{Code: ans.Error, Message: ans.Message}
	}
	if err != nil {
		return nil, fmt.Errorf("set channel: %w", err)
	}
	if ans.Unset {
		c.Info.DefaultChannel = ""
	} else {
		c.Info.DefaultChannel = ch
	}
	return &ans, nil
}

// GetChannel asks the relay which channel the device is on (PUT channelUrl with the info
// object). A non-empty channel other than "builtin" is stored locally, as the plugin does.
// Android reads no body from a non-2xx answer except HTTP 400 with channel_not_found, which
// falls back to the local channel.
func (c *Client) GetChannel(ctx context.Context) (*ChannelAnswer, error) {
	req, err := c.newRequest(ctx, http.MethodPut, c.ChannelURL, toWire(c.info()))
	if err != nil {
		return nil, fmt.Errorf("get channel: %w", err)
	}
	var ans ChannelAnswer
	status, err := c.do(req, &ans)
	if status == http.StatusBadRequest && ans.Error == "channel_not_found" && c.Info.DefaultChannel != "" {
		return &ChannelAnswer{Channel: c.Info.DefaultChannel, Status: "default"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get channel: %w", err)
	}
	if ans.Error != "" {
		return &ans, &ChannelError{Code: ans.Error, Message: ans.Message}
	}
	if ans.Channel != "" && ans.Channel != "builtin" {
		c.Info.DefaultChannel = ans.Channel
	}
	return &ans, nil
}

// ListChannels lists the channels the device may choose (GET channelUrl with every info
// field as a query parameter, bools as "true"/"false"). The answer must be a bare JSON
// array; an object with "error" returns *[ChannelError].
func (c *Client) ListChannels(ctx context.Context) ([]ChannelInfo, error) {
	u, err := url.Parse(c.ChannelURL)
	if err != nil {
		return nil, fmt.Errorf("list channels: parse channelUrl: %w", err)
	}
	u.RawQuery = infoQuery(toWire(c.info())).Encode()
	req, err := c.newRequest(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	var raw json.RawMessage
	if _, err := c.do(req, &raw); err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	var list []ChannelInfo
	if err := json.Unmarshal(raw, &list); err != nil {
		if e, ok := relayclient.ParseError(raw); ok {
			return nil, &ChannelError{Code: e.Code, Message: e.Message}
		}
		return nil, fmt.Errorf("list channels: decode answer: %w: %w", ErrParse, err)
	}
	return list, nil
}

// infoQuery encodes the info object as the plugin's GET query.
func infoQuery(w wireInfo) url.Values {
	q := url.Values{}
	q.Set("platform", w.Platform)
	q.Set("device_id", w.DeviceID)
	q.Set("app_id", w.AppID)
	q.Set("custom_id", w.CustomID)
	q.Set("version_build", w.VersionBuild)
	q.Set("version_code", w.VersionCode)
	q.Set("version_os", w.VersionOS)
	q.Set("version_name", w.VersionName)
	q.Set("plugin_version", w.PluginVersion)
	q.Set("is_emulator", strconv.FormatBool(w.IsEmulator))
	q.Set("is_prod", strconv.FormatBool(w.IsProd))
	if w.InstallSource != nil {
		q.Set("install_source", *w.InstallSource)
	}
	q.Set("defaultChannel", w.DefaultChannel)
	if w.KeyID != "" {
		q.Set("key_id", w.KeyID)
	}
	return q
}
