package sign

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ParseClaims decodes the claims of a GitHub Actions OIDC token without verifying it: Fulcio
// verifies the token, and the claims only shape the provenance, which the certificate then binds.
func ParseClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, errors.New("parse OIDC token: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, fmt.Errorf("parse OIDC token payload: %w", err)
	}
	// Some claims (run_id, repository_id) are strings in GitHub's tokens; accept numbers too.
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Claims{}, fmt.Errorf("parse OIDC token claims: %w", err)
	}
	s := func(k string) string {
		switch v := raw[k].(type) {
		case string:
			return v
		case float64:
			return strings.TrimSuffix(fmt.Sprintf("%f", v), ".000000")
		}
		return ""
	}
	c := Claims{
		Issuer: s("iss"), Subject: s("sub"), Repository: s("repository"), RepositoryID: s("repository_id"),
		RepositoryOwner: s("repository_owner"), RepositoryOwnerID: s("repository_owner_id"),
		Visibility: s("repository_visibility"), Workflow: s("workflow"), WorkflowRef: s("workflow_ref"),
		JobWorkflowRef: s("job_workflow_ref"), Ref: s("ref"), SHA: s("sha"), RunID: s("run_id"),
		RunAttempt: s("run_attempt"), EventName: s("event_name"), RunnerEnvironment: s("runner_environment"),
	}
	return c, nil
}

func (c Claims) server() string {
	if c.ServerURL != "" {
		return strings.TrimRight(c.ServerURL, "/")
	}
	return "https://github.com"
}

// identity is the certificate SAN Fulcio issues for these claims: the job's workflow.
func (c Claims) identity() string {
	ref := c.JobWorkflowRef
	if ref == "" {
		ref = c.WorkflowRef
	}
	if ref == "" {
		return ""
	}
	return c.server() + "/" + ref
}

// splitWorkflowRef splits "owner/repo/.github/workflows/x.yml@refs/tags/v1@x" into the path
// and the ref after the first '@' following the repository prefix (refs may contain '@').
func splitWorkflowRef(workflowRef, repository string) (path, ref string) {
	rest := strings.TrimPrefix(workflowRef, repository+"/")
	path, ref, _ = strings.Cut(rest, "@")
	return path, ref
}
