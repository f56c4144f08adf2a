package device

import (
	"context"
	"fmt"
	"net/http"
)

// Event is one stat the device reports (docs/protocol.md §2). VersionName is the bundle the event
// is about; empty means the running bundle.
type Event struct {
	Action         string
	VersionName    string
	OldVersionName string
	// Metadata is an optional string map (app_launch_timeout carries duration_ms).
	Metadata map[string]string
}

// wireEvent is a stat event as the 8.51.x batch path sends it: the info object, with
// version_name set to the event's bundle, plus old_version_name, action, timestamp (epoch
// ms) and optional metadata.
type wireEvent struct {
	wireInfo
	OldVersionName string            `json:"old_version_name"`
	Action         string            `json:"action"`
	Timestamp      int64             `json:"timestamp"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

// SendStats posts events to statsUrl as one JSON array, as the plugin's 1-second flush
// does. It does nothing when StatsURL is empty. A 2xx answer (which must be a JSON
// object) is success; the plugin would requeue on 408, 429 and 5xx, and drop the batch on
// any other 4xx; both are returned as *[ResponseError].
func (c *Client) SendStats(ctx context.Context, events ...Event) error {
	if c.StatsURL == "" || len(events) == 0 {
		return nil
	}
	in := c.info()
	ts := c.now().UnixMilli()
	batch := make([]wireEvent, 0, len(events))
	for _, e := range events {
		w := toWire(in)
		if e.VersionName != "" {
			w.VersionName = e.VersionName
		}
		batch = append(batch, wireEvent{wireInfo: w, OldVersionName: e.OldVersionName, Action: e.Action, Timestamp: ts, Metadata: e.Metadata})
	}
	req, err := c.newRequest(ctx, http.MethodPost, c.StatsURL, batch)
	if err != nil {
		return fmt.Errorf("send stats: %w", err)
	}
	var ack map[string]any
	if _, err := c.do(req, &ack); err != nil {
		return fmt.Errorf("send stats: %w", err)
	}
	return nil
}
