package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/internal/channel"
)

// encode returns the body of ev in format: the event itself (generic) or a Slack message.
func encode(format string, ev channel.Event) ([]byte, error) {
	if format == channel.FormatSlack {
		return json.Marshal(slackMessage(ev))
	}
	return json.Marshal(ev)
}

// slackBody is a Slack incoming-webhook message: text (the notification's fallback) and
// blocks (what Slack shows).
type slackBody struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func slackMessage(ev channel.Event) slackBody {
	text := Summary(ev)
	var ctx []string
	if ev.Actor != nil {
		ctx = append(ctx, "by "+actorName(ev.Actor))
	}
	if ev.Cause != "" {
		ctx = append(ctx, ev.Cause)
	}
	ctx = append(ctx, ev.Time.UTC().Format("2006-01-02 15:04:05Z"), "event "+ev.ID)
	return slackBody{Text: slackEscape(text), Blocks: []slackBlock{
		{Type: "section", Text: &slackText{Type: "mrkdwn", Text: slackEscape(text)}},
		{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: slackEscape(strings.Join(ctx, " · "))}}},
	}}
}

// Summary is one line saying what ev is about, as the Slack format's text carries it:
// "app/channel: 1.2.0 promoted (was 1.1.0)".
func Summary(ev channel.Event) string {
	var what string
	switch ev.Kind {
	case channel.EventPromoted:
		what = ev.Version + " promoted"
	case channel.EventRolledBack:
		what = "rolled back to " + ev.Version
	case channel.EventRolloutStarted:
		what = fmt.Sprintf("rollout of %s started at %s", ev.Version, percent(ev.Percent))
	case channel.EventRolloutAdvanced:
		what = fmt.Sprintf("rollout of %s now at %s", ev.Version, percent(ev.Percent))
	case channel.EventRolloutPaused:
		what = fmt.Sprintf("rollout of %s paused at %s", ev.Version, percent(ev.Percent))
	case channel.EventRolloutResumed:
		what = fmt.Sprintf("rollout of %s resumed at %s", ev.Version, percent(ev.Percent))
	case channel.EventRolloutCompleted:
		what = fmt.Sprintf("rollout of %s completed: every device gets it", ev.Version)
	case channel.EventRolloutCancelled:
		what = fmt.Sprintf("rollout of %s cancelled", ev.Version)
	default:
		what = string(ev.Kind) + " " + ev.Version
	}
	s := ev.App + "/" + ev.Channel + ": " + what
	if ev.From != "" && ev.From != ev.Version {
		s += " (was " + ev.From + ")"
	}
	if ev.Reason != "" {
		s += ": " + ev.Reason
	}
	if len(ev.Figures) > 0 {
		var fs []string
		for _, k := range slices.Sorted(maps.Keys(ev.Figures)) {
			fs = append(fs, fmt.Sprintf("%s=%g", k, ev.Figures[k]))
		}
		s += " [" + strings.Join(fs, ", ") + "]"
	}
	return s
}

func percent(p *int) string {
	if p == nil {
		return "?%"
	}
	return fmt.Sprintf("%d%%", *p)
}

func actorName(a *channel.Actor) string {
	for _, s := range []string{a.Name, a.Email, a.ID} {
		if s != "" {
			return a.Kind + " " + s
		}
	}
	return a.Kind
}

// slackEscape escapes the three characters Slack's mrkdwn reserves, so a version or cause
// cannot turn into a mention or a link.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
