package channel

import (
	"strings"
	"testing"
)

func TestNotificationConfig(t *testing.T) {
	t.Parallel()
	withNotifications := func(list string) string { return readmeConfig + "    notifications:\n" + list }
	c, err := ParseConfig([]byte(withNotifications(`      - url: https://hooks.slack.com/services/T0/B0/secretpath
        format: slack
        events: [rollout_paused, rolled_back]
      - {url: "http://127.0.0.1:9000/ferry", secret_env: FERRY_HOOK_SECRET}
      - {url: "http://[::1]:9000/ferry"}
      - {url: "http://localhost/ferry"}
`)))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	ns := c.Apps[0].Notifications
	if len(ns) != 4 || ns[0].Format != FormatSlack || ns[1].SecretEnv != "FERRY_HOOK_SECRET" || ns[1].Format != "" {
		t.Fatalf("notifications = %+v", ns)
	}
	if !ns[0].Wants(EventRolloutPaused) || ns[0].Wants(EventPromoted) || !ns[1].Wants(EventPromoted) {
		t.Errorf("event filters wrong: %+v", ns)
	}

	_, err = ParseConfig([]byte(withNotifications(`      - {url: "http://hooks.example.com/secretpath"}
      - {url: "https://hooks.example.com/x", format: teams}
      - {url: "https://hooks.example.com/x", secret_env: "1BAD-NAME"}
      - {url: "https://hooks.example.com/x", events: [promoted, deployed, promoted]}
      - {url: "hooks.example.com/x"}
      - {url: "https://user:pw@hooks.example.com/x"}
      - {format: generic}
`)))
	if err == nil {
		t.Fatal("ParseConfig accepted bad notifications")
	}
	for _, want := range []string{
		`notifications[0]: url must be https (http is allowed only to a loopback host such as 127.0.0.1), not http://hooks.example.com`,
		`notifications[1]: format "teams" must be generic or slack`,
		`notifications[2]: secret_env "1BAD-NAME" must be an environment variable name`,
		`notifications[3]: events[1] "deployed" is not an event kind (known: promoted, rolled_back,`,
		`notifications[3]: events[2] "promoted" listed twice`,
		`notifications[4]: url must be an absolute https URL`,
		`notifications[5]: url must not carry user info`,
		`notifications[6]: url is required`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secretpath") {
		t.Errorf("error quotes a receiver's path, which may be its secret:\n%v", err)
	}
}
