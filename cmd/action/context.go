package main

import (
	"fmt"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/pipeline"
	"github.com/ferryhq/ferry/internal/publish"
)

func newRunnerContext(a *githubactions.Action, getenv func(string) string) (*pipeline.Context, error) {
	gc, err := a.Context()
	if err != nil {
		err = fmt.Errorf("GitHub context: %w", err)
	}
	if gc == nil { // an unreadable event file: keep what the variables say
		gc = &githubactions.GitHubContext{
			ServerURL: publish.DefaultGitHubServerURL, APIURL: publish.DefaultGitHubAPIURL,
			Repository: getenv("GITHUB_REPOSITORY"), Ref: getenv("GITHUB_REF"), RefName: getenv("GITHUB_REF_NAME"),
			RefType: getenv("GITHUB_REF_TYPE"), SHA: getenv("GITHUB_SHA"), EventName: getenv("GITHUB_EVENT_NAME"),
		}
		if v := getenv("GITHUB_SERVER_URL"); v != "" {
			gc.ServerURL = v
		}
		if v := getenv("GITHUB_API_URL"); v != "" {
			gc.APIURL = v
		}
	}
	rc := &pipeline.Context{
		Repository: gc.Repository, Ref: gc.Ref, RefName: gc.RefName, RefType: gc.RefType, SHA: gc.SHA,
		RunID: getenv("GITHUB_RUN_ID"), RunAttempt: getenv("GITHUB_RUN_ATTEMPT"), EventName: gc.EventName,
		ServerURL: strings.TrimRight(gc.ServerURL, "/"), APIURL: strings.TrimRight(gc.APIURL, "/"),
		WorkflowRef: getenv("GITHUB_WORKFLOW_REF"), RepositoryID: getenv("GITHUB_REPOSITORY_ID"),
		OwnerID: getenv("GITHUB_REPOSITORY_OWNER_ID"), RunnerEnvironment: getenv("RUNNER_ENVIRONMENT"),
	}
	if repo, ok := gc.Event["repository"].(map[string]any); ok {
		if v, ok := repo["visibility"].(string); ok {
			rc.Visibility = v
		} else if p, ok := repo["private"].(bool); ok && p {
			rc.Visibility = "private"
		}
	}
	return rc, err
}
