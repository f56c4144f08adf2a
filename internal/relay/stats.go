package relay

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// statusOK is the body of every accepted /stats and channel POST/DELETE.
type statusOK struct {
	Status string `json:"status"`
}

// stats answers POST /stats (spec §2): one event object or an array of them, unknown
// actions accepted, 200 {"status":"ok"}. Events of apps this relay does not serve are
// dropped (and still answered 200, so the plugin does not retry them). When the store is
// unreachable the answer is 503, which makes the plugin keep the batch and retry it: an
// update_fail report must not be lost. A body that is not JSON objects is refused with 400,
// which makes the plugin drop it.
func (s *Server) stats(c *gin.Context) {
	body, ok := readBody(c)
	if !ok {
		return
	}
	reqs, err := parseStats(body)
	if err != nil {
		writeRequestError(c, err, "")
		return
	}
	byApp := map[string][]channel.StatEvent{}
	for _, r := range reqs {
		if _, ok := s.apps[r.Info.AppID]; !ok || r.Action == "" {
			continue
		}
		byApp[r.Info.AppID] = append(byApp[r.Info.AppID], channel.StatEvent{
			Device:  r.Info.DeviceID,
			Version: r.Info.VersionName,
			Action:  r.Action,
		})
	}
	ctx := c.Request.Context()
	for app, events := range byApp {
		if err := s.recordStats(ctx, app, events); err != nil {
			if errors.Is(err, channel.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
				writeJSON(c, http.StatusServiceUnavailable, errorBody{Error: codeUnavailable, Message: "Stats could not be stored; retry later"})
				return
			}
			// Anything else would fail again on retry; log it and let the plugin drop it.
			loggerFrom(ctx, s.log).ErrorContext(ctx, "record stats; dropping them", "app", app, "events", len(events), "error", err)
		}
	}
	writeJSON(c, http.StatusOK, statusOK{Status: "ok"})
}

func (s *Server) recordStats(ctx context.Context, app string, events []channel.StatEvent) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	if err := s.store.RecordStats(cctx, app, events); err != nil {
		s.metrics.storeErrors.WithLabelValues("record_stats").Inc()
		return err
	}
	s.metrics.statsEvents.Add(float64(len(events)))
	return nil
}
