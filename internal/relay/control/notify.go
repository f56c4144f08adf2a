package control

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// Notifier sends the app's outgoing notifications (package internal/notify implements it).
// Notify must return at once: it is called on the request's path, after the store write.
type Notifier interface {
	// Notify queues ev for the receivers of ev.App.
	Notify(ev channel.Event)
	// Deliveries returns app's recent deliveries, newest first, at most limit.
	Deliveries(app string, limit int) []relayclient.NotificationDelivery
}

// Bounds of GET …/notifications.
const (
	defaultNotifications = 50
	maxNotifications     = 1000
)

// updateState is the control plane's only way to change a channel: Store.UpdateState, then,
// once the change is stored, the notification its audit entry calls for. Every path (admin
// API, tag push, registration, pending promotion) goes through it, so each stored change
// notifies exactly once, and a refused or failed one never does.
func (a *API) updateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error) {
	var entry *channel.AuditEntry
	var before *channel.Rollout
	st, err := a.store.UpdateState(ctx, app, ch, func(s *channel.State) (*channel.AuditEntry, error) {
		// The store may call fn more than once; what the last call saw and returned is
		// what was written.
		before = nil
		if s.Rollout != nil {
			r := *s.Rollout
			before = &r
		}
		e, err := fn(s)
		entry = e
		return e, err
	})
	if err == nil && entry != nil && a.notifier != nil {
		if ev, ok := eventOf(entry, before, st); ok {
			a.notifier.Notify(ev)
		}
	}
	return st, err
}

// eventOf is the notification for a stored change: its audit entry e, the rollout before it
// and the state after it. Changes that notify nobody (policy, a recorded tag push) give
// false.
func eventOf(e *channel.AuditEntry, before *channel.Rollout, after *channel.State) (channel.Event, bool) {
	ev := channel.Event{Time: e.Time, App: e.App, Channel: e.Channel, Version: e.Version, From: e.From, Actor: e.Actor, Cause: e.Cause}
	r := after.Rollout
	if r == nil {
		r = before
	}
	switch e.Action {
	case "promote":
		ev.Kind = channel.EventPromoted
	case "rollback":
		ev.Kind = channel.EventRolledBack
	case "rollout":
		ev.Kind = channel.EventRolloutAdvanced
		if before == nil || r == nil || before.Version != r.Version {
			ev.Kind = channel.EventRolloutStarted
		}
	case "plan_start":
		// A plan starts its first step: the rollout controller notifies its later steps.
		ev.Kind = channel.EventRolloutStarted
	case "pause":
		ev.Kind = channel.EventRolloutPaused
	case "resume":
		ev.Kind = channel.EventRolloutResumed
	case "complete":
		ev.Kind = channel.EventRolloutCompleted
	case "cancel":
		ev.Kind = channel.EventRolloutCancelled
	default:
		return ev, false
	}
	if r != nil && ev.Kind != channel.EventPromoted && ev.Kind != channel.EventRolledBack {
		p := r.Percent
		if ev.Kind == channel.EventRolloutCompleted {
			p = 100
		}
		ev.Percent = &p
	}
	return ev, true
}

// notifications answers GET /api/v1/apps/:app/notifications: this instance's delivery log.
func (a *API) notifications(c *gin.Context) error {
	app := appOf(c)
	limit, err := queryLimit(c, defaultNotifications, maxNotifications)
	if err != nil {
		return err
	}
	out := []relayclient.NotificationDelivery{}
	if a.notifier != nil {
		out = a.notifier.Deliveries(app.ID, limit)
	}
	c.JSON(http.StatusOK, relayclient.NotificationList{App: app.ID, Deliveries: out})
	return nil
}
