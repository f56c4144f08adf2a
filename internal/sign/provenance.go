package sign

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// statement is an in-toto Statement v1.
type statement struct {
	Type          string         `json:"_type"`
	Subject       []subject      `json:"subject"`
	PredicateType string         `json:"predicateType"`
	Predicate     slsaProvenance `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type slsaProvenance struct {
	BuildDefinition struct {
		BuildType          string `json:"buildType"`
		ExternalParameters struct {
			Workflow struct {
				Ref        string `json:"ref"`
				Repository string `json:"repository"`
				Path       string `json:"path"`
			} `json:"workflow"`
		} `json:"externalParameters"`
		InternalParameters struct {
			GitHub struct {
				EventName         string `json:"event_name"`
				RepositoryID      string `json:"repository_id"`
				RepositoryOwnerID string `json:"repository_owner_id"`
				RunnerEnvironment string `json:"runner_environment"`
			} `json:"github"`
		} `json:"internalParameters"`
		ResolvedDependencies []struct {
			URI    string            `json:"uri"`
			Digest map[string]string `json:"digest"`
		} `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		Metadata struct {
			InvocationID string `json:"invocationId"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

// Provenance returns the JSON of an in-toto Statement v1 with an SLSA v1 predicate for the
// artifact name with hex SHA-256 sha256hex, built the way actions/attest-build-provenance builds
// it from the OIDC token claims c.
func Provenance(name, sha256hex string, c Claims) ([]byte, error) {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("provenance: subject name is empty"))
	}
	if !hexSHA256.MatchString(sha256hex) {
		errs = append(errs, fmt.Errorf("provenance: %q is not a lowercase hex SHA-256", sha256hex))
	}
	if c.Repository == "" || c.SHA == "" || c.WorkflowRef == "" {
		errs = append(errs, errors.New("provenance: claims need repository, sha and workflow_ref"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	server := c.server()
	path, wfRef := splitWorkflowRef(c.WorkflowRef, c.Repository)
	builder := c.JobWorkflowRef
	if builder == "" {
		builder = c.WorkflowRef
	}
	var p slsaProvenance
	bd := &p.BuildDefinition
	bd.BuildType = GitHubWorkflowBuildType
	bd.ExternalParameters.Workflow.Ref = wfRef
	bd.ExternalParameters.Workflow.Repository = server + "/" + c.Repository
	bd.ExternalParameters.Workflow.Path = path
	gh := &bd.InternalParameters.GitHub
	gh.EventName, gh.RepositoryID, gh.RepositoryOwnerID, gh.RunnerEnvironment = c.EventName, c.RepositoryID, c.RepositoryOwnerID, c.RunnerEnvironment
	bd.ResolvedDependencies = append(bd.ResolvedDependencies, struct {
		URI    string            `json:"uri"`
		Digest map[string]string `json:"digest"`
	}{URI: "git+" + server + "/" + c.Repository + "@" + c.Ref, Digest: map[string]string{"gitCommit": c.SHA}})
	p.RunDetails.Builder.ID = server + "/" + builder
	if c.RunID != "" {
		attempt := c.RunAttempt
		if attempt == "" {
			attempt = "1"
		}
		p.RunDetails.Metadata.InvocationID = fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", server, c.Repository, c.RunID, attempt)
	}
	st := statement{
		Type:          "https://in-toto.io/Statement/v1",
		Subject:       []subject{{Name: name, Digest: map[string]string{"sha256": sha256hex}}},
		PredicateType: SLSAProvenanceV1,
		Predicate:     p,
	}
	return json.Marshal(st)
}
