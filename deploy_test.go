package ferry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// The deployment files checked here. They cannot be applied in CI (no Docker engine, no
// cluster), so this test holds them to the code instead: every document parses, every
// environment variable is one the relay reads, the image is the one the release workflow
// publishes, probes and ports match the relay's routes and listen address, the config they
// ship is valid, and the relay really starts with their settings.
const composeFile = "docker-compose.yml"

var kubernetesGlob = filepath.Join("deploy", "kubernetes", "*.yaml")

// --- Kubernetes object shapes (only the fields checked) ---

type k8sObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Resources  []string          `yaml:"resources"` // Kustomization
	Images     []struct {
		Name   string `yaml:"name"`
		NewTag string `yaml:"newTag"`
	} `yaml:"images"` // Kustomization

	file string
}

type k8sMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type workloadSpec struct {
	Replicas    *int   `yaml:"replicas"`
	ServiceName string `yaml:"serviceName"`
	Selector    struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata k8sMeta `yaml:"metadata"`
		Spec     podSpec `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata k8sMeta `yaml:"metadata"`
		Spec     struct {
			Resources struct {
				Requests map[string]string `yaml:"requests"`
			} `yaml:"resources"`
		} `yaml:"spec"`
	} `yaml:"volumeClaimTemplates"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name  string `yaml:"name"`
			Items []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

type serviceSpec struct {
	ClusterIP string            `yaml:"clusterIP"`
	Selector  map[string]string `yaml:"selector"`
	Ports     []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

type pdbSpec struct {
	MinAvailable *int `yaml:"minAvailable"`
	Selector     struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
}

// --- Compose shapes ---

type composeFileT struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context string `yaml:"context"`
		Target  string `yaml:"target"`
	} `yaml:"build"`
	User        string            `yaml:"user"`
	ReadOnly    bool              `yaml:"read_only"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

// --- loading ---

// yamlDocs decodes every document of a multi-document YAML file into nodes, failing the
// test on invalid YAML. Empty documents (a trailing ---) are dropped.
func yamlDocs(t *testing.T, file string) []*yaml.Node {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: invalid YAML: %v", file, len(docs)+1, err)
		}
		if len(n.Content) > 0 && n.Content[0].Kind != 0 && !(n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			docs = append(docs, &n)
		}
	}
}

func decodeNode(t *testing.T, where string, n *yaml.Node, v any) {
	t.Helper()
	if err := n.Decode(v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
}

// kubernetesObjects parses every document of deploy/kubernetes/*.yaml.
func kubernetesObjects(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(kubernetesGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests match %s", kubernetesGlob)
	}
	var objs []k8sObject
	for _, f := range files {
		docs := yamlDocs(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		for i, d := range docs {
			var o k8sObject
			decodeNode(t, fmt.Sprintf("%s: document %d", f, i+1), d, &o)
			o.file = f
			objs = append(objs, o)
		}
	}
	return objs
}

func loadCompose(t *testing.T) composeFileT {
	t.Helper()
	docs := yamlDocs(t, composeFile)
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", composeFile, len(docs))
	}
	var c composeFileT
	decodeNode(t, composeFile, docs[0], &c)
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", composeFile)
	}
	return c
}

func findObject(objs []k8sObject, kind, name string) *k8sObject {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}

func ofKind(objs []k8sObject, kind string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func workload(t *testing.T, o k8sObject) workloadSpec {
	t.Helper()
	var s workloadSpec
	decodeNode(t, o.file+": "+o.Kind+" "+o.Metadata.Name, &o.Spec, &s)
	return s
}

// --- facts read from the code ---

// relayEnvNames are the environment variables cmd/relay reads: the string literals in its
// sources that name FERRY_* variables, REDIS_URL or LOG_*.
func relayEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`"(FERRY_[A-Z0-9_]+|REDIS_URL|LOG_[A-Z0-9_]+)"`)
	names := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join("cmd", "relay", "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
	}
	for _, must := range []string{"FERRY_CONFIG", "FERRY_ADDR", "REDIS_URL", "FERRY_ADMIN_TOKEN"} {
		if !names[must] {
			t.Fatalf("cmd/relay sources do not read %s: the extraction is broken (found %v)", must, keysOf(names))
		}
	}
	return names
}

// relaySecretNames are the variables cmd/relay reads only from the environment (no flag).
func relaySecretNames(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("cmd", "relay", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`getenv\("(FERRY_[A-Z0-9_]+)"\)`).FindAllSubmatch(src, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) == 0 {
		t.Fatal("cmd/relay/config.go reads no secret with getenv(\"FERRY_…\")")
	}
	sort.Strings(out)
	return out
}

// relayGETRoutes are the paths internal/relay registers for GET.
func relayGETRoutes(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`\.GET\(\s*"(/[^"]*)"`)
	routes := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join("internal", "relay", "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			routes[string(m[1])] = true
		}
	}
	return routes
}

// relayImageRepo is the relay image repository the release workflow pushes (the tags of its
// build step with target relay, without the tag). It also checks that action.yml's image is a
// different repository, so the relay manifests cannot point at the action image.
func relayImageRepo(t *testing.T) string {
	t.Helper()
	docs := yamlDocs(t, filepath.Join(".github", "workflows", "release.yml"))
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	decodeNode(t, "release.yml", docs[0], &wf)
	repos := map[string]bool{}
	for _, j := range wf.Jobs {
		for _, s := range j.Steps {
			if s.With["target"] != "relay" {
				continue
			}
			for _, tag := range strings.Split(s.With["tags"], ",") {
				if tag = strings.TrimSpace(tag); tag != "" {
					repos[imageRepo(tag)] = true
				}
			}
		}
	}
	if len(repos) != 1 {
		t.Fatalf("release.yml: want one relay image repository (a build step with target: relay), got %v", keysOf(repos))
	}
	relay := keysOf(repos)[0]

	adocs := yamlDocs(t, "action.yml")
	var action struct {
		Runs struct {
			Image string `yaml:"image"`
		} `yaml:"runs"`
	}
	decodeNode(t, "action.yml", adocs[0], &action)
	actionRepo := imageRepo(strings.TrimPrefix(action.Runs.Image, "docker://"))
	if actionRepo == "" || actionRepo == relay {
		t.Fatalf("action.yml image %q: want a repository other than the relay's %q", action.Runs.Image, relay)
	}
	return relay
}

// imageRepo strips the digest and tag from an image reference (a registry host may carry a
// port, so only a colon after the last slash starts the tag).
func imageRepo(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		ref = ref[:i]
	}
	return ref
}

// dockerStage returns the USER and EXPOSE lines of one stage of the Dockerfile.
func dockerStage(t *testing.T, stage string) (user string, expose []string) {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			in = len(f) >= 4 && strings.EqualFold(f[len(f)-2], "AS") && f[len(f)-1] == stage
		case "USER":
			if in {
				user = f[1]
			}
		case "EXPOSE":
			if in {
				expose = append(expose, f[1:]...)
			}
		}
	}
	if user == "" && expose == nil {
		t.Fatalf("Dockerfile: no stage %q with USER or EXPOSE", stage)
	}
	return user, expose
}

func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("FERRY_ADDR %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("FERRY_ADDR %q: port: %v", addr, err)
	}
	return n
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// --- the relay's deployment, as each file describes it ---

// relayDeployment is what a deployment file gives the relay: its environment (literal
// values; secrets as names), its config file contents and its Redis arguments.
type relayDeployment struct {
	name       string
	env        map[string]string // literal values
	secretEnv  []string          // variables filled from secrets
	config     []byte            // the ferry.yaml the relay loads
	redisArgs  []string          // redis-server arguments
	redisHosts map[string]int    // host name → port Redis is reachable at
}

// kubernetesRelay reads the relay Deployment and its ConfigMap, Secret and Redis.
func kubernetesRelay(t *testing.T, objs []k8sObject) relayDeployment {
	t.Helper()
	deps := ofKind(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one Deployment (the relay), got %d", len(deps))
	}
	spec := workload(t, deps[0])
	pod := spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("relay Deployment: want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	d := relayDeployment{name: "kubernetes", env: map[string]string{}, redisHosts: map[string]int{}}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			sec := findObject(objs, "Secret", ref.Name)
			if sec == nil {
				t.Errorf("env %s: Secret %q is not in the manifests", e.Name, ref.Name)
			} else if _, ok := sec.StringData[ref.Key]; !ok {
				t.Errorf("env %s: Secret %q has no key %q", e.Name, ref.Name, ref.Key)
			}
			d.secretEnv = append(d.secretEnv, e.Name)
		case e.ValueFrom != nil:
			t.Errorf("env %s: only literal values and secretKeyRef are checked", e.Name)
		default:
			d.env[e.Name] = e.Value
		}
	}
	// FERRY_CONFIG must be a file of a mounted ConfigMap.
	cfgPath := d.env["FERRY_CONFIG"]
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(cfgPath, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			key := rel
			for _, it := range v.ConfigMap.Items {
				if it.Path == rel {
					key = it.Key
				}
			}
			cm := findObject(objs, "ConfigMap", v.ConfigMap.Name)
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %q is not in the manifests", v.Name, v.ConfigMap.Name)
			}
			data, ok := cm.Data[key]
			if !ok {
				t.Fatalf("FERRY_CONFIG %s: ConfigMap %q has no key %q", cfgPath, cm.Metadata.Name, key)
			}
			d.config = []byte(data)
			if !m.ReadOnly {
				t.Errorf("config volume %s is mounted writable", m.Name)
			}
		}
	}
	if d.config == nil {
		t.Fatalf("FERRY_CONFIG %q is not a file of a mounted ConfigMap", cfgPath)
	}
	// Redis: the StatefulSet's arguments, reachable through its Services.
	for _, o := range ofKind(objs, "StatefulSet") {
		ss := workload(t, o)
		for _, rc := range ss.Template.Spec.Containers {
			if !slices.Contains(append(slices.Clone(rc.Command), rc.Args...), "redis-server") {
				continue
			}
			d.redisArgs = append(slices.Clone(rc.Command), rc.Args...)
			for _, svc := range ofKind(objs, "Service") {
				var s serviceSpec
				decodeNode(t, "Service "+svc.Metadata.Name, &svc.Spec, &s)
				if !labelsMatch(s.Selector, ss.Template.Metadata.Labels) {
					continue
				}
				for _, p := range s.Ports {
					if resolvePort(t, p.TargetPort, rc) == 6379 {
						d.redisHosts[svc.Metadata.Name] = p.Port
					}
				}
			}
		}
	}
	return d
}

// composeRelay reads the relay service of docker-compose.yml and its Redis service.
func composeRelay(t *testing.T, c composeFileT) relayDeployment {
	t.Helper()
	relay, ok := c.Services["relay"]
	if !ok {
		t.Fatalf("%s: no service named relay", composeFile)
	}
	d := relayDeployment{name: "compose", env: map[string]string{}, redisHosts: map[string]int{}}
	ref := regexp.MustCompile(`^\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}$`)
	for k, v := range relay.Environment {
		if m := ref.FindStringSubmatch(v); m != nil {
			if m[1] != k {
				t.Errorf("%s: %s takes ${%s}; pass each secret under its own name", composeFile, k, m[1])
			}
			d.secretEnv = append(d.secretEnv, k)
			continue
		}
		d.env[k] = v
	}
	sort.Strings(d.secretEnv)
	cfgPath := d.env["FERRY_CONFIG"]
	for _, v := range relay.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || parts[1] != cfgPath {
			continue
		}
		if len(parts) < 3 || parts[2] != "ro" {
			t.Errorf("%s: config volume %q is not read-only", composeFile, v)
		}
		data, err := os.ReadFile(filepath.FromSlash(parts[0]))
		if err != nil {
			t.Fatalf("%s: config volume %q: %v", composeFile, v, err)
		}
		d.config = data
	}
	if d.config == nil {
		t.Fatalf("%s: FERRY_CONFIG %q is not a mounted file", composeFile, cfgPath)
	}
	for name, s := range c.Services {
		if slices.Contains(s.Command, "redis-server") {
			d.redisArgs = s.Command
			d.redisHosts[name] = 6379
		}
	}
	return d
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort turns a port number or a container port name into a number.
func resolvePort(t *testing.T, port string, c k8sContainer) int {
	t.Helper()
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return p.ContainerPort
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, port)
	return 0
}

// checkRelayEnv checks that a deployment sets only variables the relay reads, points
// REDIS_URL at its Redis, and passes every secret the relay takes.
// goRuntimeEnv are variables every Go program's runtime reads.
var goRuntimeEnv = map[string]bool{"GOGC": true, "GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true}

// binaryBytes parses a size with a binary unit: Kubernetes' "256Mi" or Go's "200MiB".
func binaryBytes(t *testing.T, what, v string) int64 {
	t.Helper()
	for i, unit := range []string{"Ki", "Mi", "Gi"} {
		if n, ok := strings.CutSuffix(strings.TrimSuffix(v, "B"), unit); ok {
			if x, err := strconv.ParseInt(n, 10, 64); err == nil {
				return x << (10 * (i + 1))
			}
		}
	}
	t.Fatalf("%s %q: want a whole number of Ki, Mi or Gi", what, v)
	return 0
}

func checkRelayEnv(t *testing.T, d relayDeployment, known map[string]bool, secrets []string) {
	t.Helper()
	for _, name := range append(keysOf(d.env), d.secretEnv...) {
		if !known[name] && !goRuntimeEnv[name] {
			t.Errorf("%s: the relay reads no %s (cmd/relay reads %v)", d.name, name, keysOf(known))
		}
	}
	if diff := cmp.Diff(secrets, slices.Sorted(slices.Values(stringsIn(d.secretEnv, secrets)))); diff != "" {
		t.Errorf("%s: secrets passed from a secret store (-relay reads +passed):\n%s", d.name, diff)
	}
	for _, s := range secrets {
		if _, literal := d.env[s]; literal {
			t.Errorf("%s: secret %s has a literal value; take it from a secret", d.name, s)
		}
	}
	u, err := url.Parse(d.env["REDIS_URL"])
	if err != nil || u.Scheme != "redis" {
		t.Fatalf("%s: REDIS_URL %q: want redis://host:port/db", d.name, d.env["REDIS_URL"])
	}
	if port, ok := d.redisHosts[u.Hostname()]; !ok {
		t.Errorf("%s: REDIS_URL host %q is none of the Redis services %v", d.name, u.Hostname(), keysOf(d.redisHosts))
	} else if got := u.Port(); got != strconv.Itoa(port) {
		t.Errorf("%s: REDIS_URL port %q, Redis listens on %d", d.name, got, port)
	}
	if !slices.Contains(d.redisArgs, "--appendonly") || argAfter(d.redisArgs, "--appendonly") != "yes" {
		t.Errorf("%s: Redis runs without --appendonly yes: %v", d.name, d.redisArgs)
	}
	if f := argAfter(d.redisArgs, "--appendfsync"); f != "everysec" && f != "always" {
		t.Errorf("%s: Redis --appendfsync %q: want everysec or always", d.name, f)
	}
}

func stringsIn(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func argAfter(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

// --- tests ---

// TestDeployYAMLParses parses every document of the Compose file and the Kubernetes
// manifests and checks each Kubernetes object names itself and its namespace.
func TestDeployYAMLParses(t *testing.T) {
	t.Parallel()
	loadCompose(t)
	objs := kubernetesObjects(t)
	var namespaces []string
	for _, o := range ofKind(objs, "Namespace") {
		namespaces = append(namespaces, o.Metadata.Name)
	}
	for _, o := range objs {
		if o.Kind == "Kustomization" {
			continue
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: object without apiVersion, kind or metadata.name: %+v", o.file, o.Metadata)
		}
		if o.Kind != "Namespace" && len(namespaces) > 0 && !slices.Contains(namespaces, o.Metadata.Namespace) {
			t.Errorf("%s: %s %s in namespace %q, want one of %v", o.file, o.Kind, o.Metadata.Name, o.Metadata.Namespace, namespaces)
		}
	}
}

// TestDeployNamesNoUnknownVariable scans the deployment files and their README, comments
// included, for FERRY_* names: each must be a variable the relay reads, so no file teaches
// a setting that does nothing.
func TestDeployNamesNoUnknownVariable(t *testing.T) {
	t.Parallel()
	known := relayEnvNames(t)
	files, _ := filepath.Glob(kubernetesGlob)
	files = append(files, composeFile, filepath.Join("deploy", "README.md"))
	re := regexp.MustCompile(`\bFERRY_[A-Z0-9_]*[A-Z0-9]\b`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(data), -1) {
			if !known[name] {
				t.Errorf("%s names %s, which the relay does not read", f, name)
			}
		}
	}
}

// TestKubernetesManifests checks the relay Deployment, its Service, PodDisruptionBudget and
// Redis StatefulSet against the code: image, user, probes, ports, resources, config.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	objs := kubernetesObjects(t)
	imageRepoWant := relayImageRepo(t)
	routes := relayGETRoutes(t)
	uid, expose := dockerStage(t, "relay")
	d := kubernetesRelay(t, objs)
	checkRelayEnv(t, d, relayEnvNames(t), relaySecretNames(t))

	dep := ofKind(objs, "Deployment")[0]
	spec := workload(t, dep)
	pod := spec.Template.Spec
	c := pod.Containers[0]

	if got := imageRepo(c.Image); got != imageRepoWant {
		t.Errorf("relay image %q: want repository %s (release.yml)", c.Image, imageRepoWant)
	}
	if spec.Replicas == nil || *spec.Replicas < 2 {
		t.Errorf("relay replicas %v: want 2 or more (state is in the shared Redis)", spec.Replicas)
	}
	if !labelsMatch(spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
		t.Errorf("relay selector %v does not match its pod labels %v", spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
	}

	// Non-root as the image's user, read-only root, no privilege escalation.
	wantUID, _, _ := strings.Cut(uid, ":")
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("relay pod: runAsNonRoot is not true")
	}
	if pod.SecurityContext.RunAsUser == nil || strconv.FormatInt(*pod.SecurityContext.RunAsUser, 10) != wantUID {
		t.Errorf("relay pod runAsUser %v: want the image's user %s", pod.SecurityContext.RunAsUser, wantUID)
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("relay container: readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("relay container: allowPrivilegeEscalation is not false")
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("relay container: capabilities not dropped")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("relay container resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	// The relay raises GOGC; a soft memory limit under the container's keeps it from being
	// killed for memory the collector could have freed.
	if limit := c.Resources.Limits["memory"]; limit != "" {
		soft, ok := d.env["GOMEMLIMIT"]
		if !ok {
			t.Error("relay container: no GOMEMLIMIT under its memory limit (the relay runs GOGC=400)")
		} else if s, l := binaryBytes(t, "GOMEMLIMIT", soft), binaryBytes(t, "memory limit", limit); s >= l*9/10 {
			t.Errorf("relay container: GOMEMLIMIT %s is not below 90%% of its memory limit %s", soft, limit)
		}
	}

	// The port the relay listens on is the container port, the image's EXPOSE, the probes',
	// the Service's target and Prometheus's.
	port := addrPort(t, d.env["FERRY_ADDR"])
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port {
		t.Errorf("relay container ports %+v: want one, %d (FERRY_ADDR %q)", c.Ports, port, d.env["FERRY_ADDR"])
	}
	if !slices.Contains(expose, strconv.Itoa(port)) {
		t.Errorf("Dockerfile relay stage exposes %v, manifests listen on %d", expose, port)
	}
	for name, pr := range map[string]struct {
		p    *k8sProbe
		path string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("relay %s probe: want httpGet %s", name, pr.path)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || !routes[pr.p.HTTPGet.Path] {
			t.Errorf("relay %s probe path %q: want %s, a route of internal/relay (GET routes: %v)", name, pr.p.HTTPGet.Path, pr.path, keysOf(routes))
		}
		if got := resolvePort(t, pr.p.HTTPGet.Port, c); got != port {
			t.Errorf("relay %s probe port %q = %d, relay listens on %d", name, pr.p.HTTPGet.Port, got, port)
		}
	}
	ann := spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(port) || !routes[ann["prometheus.io/path"]] {
		t.Errorf("relay pod Prometheus annotations %v: want scrape true, port %d, a metrics route (GET routes %v)", ann, port, keysOf(routes))
	}

	// Graceful shutdown fits in the grace period.
	if st, ok := d.env["FERRY_SHUTDOWN_TIMEOUT"]; ok {
		dur, err := time.ParseDuration(st)
		if err != nil {
			t.Errorf("FERRY_SHUTDOWN_TIMEOUT %q: %v", st, err)
		} else if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= dur {
			t.Errorf("terminationGracePeriodSeconds %v: want more than FERRY_SHUTDOWN_TIMEOUT %s", g, dur)
		}
	}

	// The Service reaches the relay's port; the PDB covers the relay pods.
	var served bool
	for _, svc := range ofKind(objs, "Service") {
		var s serviceSpec
		decodeNode(t, "Service "+svc.Metadata.Name, &svc.Spec, &s)
		if !labelsMatch(s.Selector, spec.Template.Metadata.Labels) {
			continue
		}
		for _, p := range s.Ports {
			if resolvePort(t, p.TargetPort, c) == port {
				served = true
			}
		}
	}
	if !served {
		t.Error("no Service targets the relay's port")
	}
	for _, o := range ofKind(objs, "PodDisruptionBudget") {
		var p pdbSpec
		decodeNode(t, "PodDisruptionBudget", &o.Spec, &p)
		if labelsMatch(p.Selector.MatchLabels, spec.Template.Metadata.Labels) && (p.MinAvailable == nil || *p.MinAvailable >= *spec.Replicas) {
			t.Errorf("PodDisruptionBudget %s minAvailable %v blocks every eviction of %d replicas", o.Metadata.Name, p.MinAvailable, *spec.Replicas)
		}
	}

	// Redis keeps its AOF on a claimed volume.
	sts := ofKind(objs, "StatefulSet")
	if len(sts) != 1 {
		t.Fatalf("want one StatefulSet (Redis), got %d", len(sts))
	}
	rs := workload(t, sts[0])
	if len(rs.VolumeClaimTemplates) == 0 || rs.VolumeClaimTemplates[0].Spec.Resources.Requests["storage"] == "" {
		t.Error("Redis StatefulSet: no volumeClaimTemplate with a storage request")
	}
	dir := argAfter(d.redisArgs, "--dir")
	var onVolume bool
	for _, rc := range rs.Template.Spec.Containers {
		for _, m := range rc.VolumeMounts {
			for _, v := range rs.VolumeClaimTemplates {
				if m.Name == v.Metadata.Name && m.MountPath == dir {
					onVolume = true
				}
			}
		}
	}
	if !onVolume {
		t.Errorf("Redis --dir %q is not a claimed volume's mount", dir)
	}
	if len(d.redisHosts) == 0 {
		t.Error("no Service selects the Redis pods")
	}

	// The Secret is a template: placeholders only, each key a secret the relay reads.
	secrets := relaySecretNames(t)
	for _, s := range ofKind(objs, "Secret") {
		if got := keysOf(s.StringData); !cmp.Equal(got, secrets) {
			t.Errorf("Secret %s keys %v: want the relay's secrets %v", s.Metadata.Name, got, secrets)
		}
		for k, v := range s.StringData {
			if !strings.HasPrefix(v, "<") || !strings.HasSuffix(v, ">") {
				t.Errorf("Secret %s key %s holds a value, want a <placeholder>", s.Metadata.Name, k)
			}
		}
		raw, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte("kubectl -n "+s.Metadata.Namespace+" create secret generic "+s.Metadata.Name)) {
			t.Errorf("%s: no comment saying how to create the Secret with kubectl", s.file)
		}
	}

	// kustomization.yaml lists existing files, never the Secret template, and retags the
	// relay image.
	for _, k := range ofKind(objs, "Kustomization") {
		for _, r := range k.Resources {
			p := filepath.Join(filepath.Dir(k.file), filepath.FromSlash(r))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: resource %s: %v", k.file, r, err)
			}
			for _, s := range ofKind(objs, "Secret") {
				if filepath.Clean(p) == filepath.Clean(s.file) {
					t.Errorf("%s applies the Secret template %s", k.file, r)
				}
			}
		}
		for _, im := range k.Images {
			if im.Name != imageRepoWant {
				t.Errorf("%s: images: %q is not the relay image %s", k.file, im.Name, imageRepoWant)
			}
		}
	}

	// The shipped config is valid.
	if _, err := channel.ParseConfig(d.config); err != nil {
		t.Errorf("ConfigMap ferry.yaml: %v", err)
	}
}

// TestComposeFile checks docker-compose.yml's relay service against the code.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	d := composeRelay(t, c)
	checkRelayEnv(t, d, relayEnvNames(t), relaySecretNames(t))
	relay := c.Services["relay"]

	// As Compose interpolates it with nothing set: ${VAR:-default} gives the default.
	image := regexp.MustCompile(`\$\{[A-Z0-9_]+:?-([^}]*)\}`).ReplaceAllString(relay.Image, "$1")
	if strings.ContainsAny(image, "${}") {
		t.Errorf("relay image %q: want every variable to have a default", relay.Image)
	}
	if want := relayImageRepo(t); imageRepo(image) != want {
		t.Errorf("relay image %q (%s): want repository %s (release.yml)", relay.Image, image, want)
	}
	if relay.Build == nil || relay.Build.Target != "relay" || path.Clean(relay.Build.Context) != "." {
		t.Errorf("relay build %+v: want context . and target relay", relay.Build)
	}
	uid, expose := dockerStage(t, "relay")
	if relay.User != uid || !relay.ReadOnly {
		t.Errorf("relay user %q read_only %v: want the image's user %s and a read-only root", relay.User, relay.ReadOnly, uid)
	}
	port := addrPort(t, d.env["FERRY_ADDR"])
	if !slices.Contains(expose, strconv.Itoa(port)) {
		t.Errorf("Dockerfile relay stage exposes %v, compose listens on %d", expose, port)
	}
	for _, p := range relay.Ports {
		if !strings.HasSuffix(p, ":"+strconv.Itoa(port)) {
			t.Errorf("relay port %q does not publish the relay's port %d", p, port)
		}
	}
	for name := range d.redisHosts {
		if relay.DependsOn[name].Condition != "service_healthy" {
			t.Errorf("relay does not wait for %s to be healthy", name)
		}
	}
	if st, ok := d.env["FERRY_SHUTDOWN_TIMEOUT"]; ok {
		dur, err1 := time.ParseDuration(st)
		grace, err2 := time.ParseDuration(relay.StopGracePeriod)
		if err1 != nil || err2 != nil || grace <= dur {
			t.Errorf("stop_grace_period %q: want more than FERRY_SHUTDOWN_TIMEOUT %q", relay.StopGracePeriod, st)
		}
	}
	if _, err := channel.ParseConfig(d.config); err != nil {
		t.Errorf("compose config: %v", err)
	}
}

// TestDeployRelayStarts builds cmd/relay and starts it with each deployment's settings and
// config: on the embedded store (single instance) and on a real redis-server started with the
// deployment's own Redis arguments. Each relay must answer /healthz, /readyz and /metrics,
// name the config's apps in its start-up line, and stop cleanly on SIGTERM.
func TestDeployRelayStarts(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/relay").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v\n%s", err, out)
	}
	objs := kubernetesObjects(t)
	deployments := []relayDeployment{kubernetesRelay(t, objs), composeRelay(t, loadCompose(t))}
	for _, d := range deployments {
		t.Run(d.name+"/embedded", func(t *testing.T) {
			t.Parallel()
			env := cloneEnv(d.env)
			delete(env, "REDIS_URL")
			env["FERRY_DATA_DIR"] = filepath.Join(t.TempDir(), "data")
			startRelay(t, bin, d, env)
		})
		t.Run(d.name+"/redis", func(t *testing.T) {
			t.Parallel()
			var extra []string
			for i := 0; i < len(d.redisArgs); i++ {
				switch a := d.redisArgs[i]; a {
				case "redis-server":
				case "--dir", "--port", "--bind":
					i++ // the peer chooses its own directory and loopback port
				default:
					extra = append(extra, a)
				}
			}
			r := testpeers.Redis(t, extra...)
			for _, name := range []string{"appendonly", "appendfsync"} {
				if got, want := redisConfig(t, r.Addr, name), argAfter(d.redisArgs, "--"+name); got != want {
					t.Errorf("redis %s = %q, the deployment sets %q", name, got, want)
				}
			}
			env := cloneEnv(d.env)
			u, _ := url.Parse(env["REDIS_URL"])
			u.Host = r.Addr
			env["REDIS_URL"] = u.String()
			startRelay(t, bin, d, env)
		})
	}
}

func cloneEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// startRelay runs the relay binary with a deployment's environment (its secrets set to test
// values, its config written to a file, a free loopback port) and checks it serves.
func startRelay(t *testing.T, bin string, d relayDeployment, env map[string]string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ferry.yaml")
	if err := os.WriteFile(cfg, d.config, 0o600); err != nil {
		t.Fatal(err)
	}
	env["FERRY_CONFIG"] = cfg
	env["FERRY_ADDR"] = fmt.Sprintf("127.0.0.1:%d", testpeers.FreePort(t))
	for _, s := range d.secretEnv {
		if strings.HasPrefix(s, "FERRY_OIDC_") {
			continue // the audience is a URL, not a secret; leaving it unset disables OIDC
		}
		env[s] = "test-" + strings.ToLower(s)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range keysOf(env) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	logs := &lockedBuffer{b: new(bytes.Buffer)}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done //nolint:errcheck // killed: its exit status says nothing
		}
	})
	output := logs.String

	base := "http://" + env["FERRY_ADDR"]
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/healthz: %s\n%s", resp.Status, output())
			}
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("relay exited before serving: %v\n%s", err, output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay does not answer /healthz: %v\n%s", err, output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range []string{"/readyz", "/metrics"} {
		req, err := http.NewRequest(http.MethodGet, base+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok := env["FERRY_METRICS_TOKEN"]; tok != "" && p == "/metrics" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s %s", p, resp.Status, body)
		}
	}

	// The start-up line names the config's apps and the store.
	apps, err := channel.ParseConfig(d.config)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, a := range apps.Apps {
		want = append(want, a.ID)
	}
	var started struct {
		Msg   string   `json:"msg"`
		Apps  []string `json:"apps"`
		Store string   `json:"store"`
	}
	for _, line := range strings.Split(output(), "\n") {
		var rec struct {
			Msg   string   `json:"msg"`
			Apps  []string `json:"apps"`
			Store string   `json:"store"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "relay listening" {
			started = rec
		}
	}
	if diff := cmp.Diff(want, started.Apps); diff != "" {
		t.Errorf("relay serves other apps than its config (-config +relay):\n%s\n%s", diff, output())
	}
	wantStore := "bolt"
	if env["REDIS_URL"] != "" {
		wantStore = "redis"
	}
	if !strings.Contains(strings.ToLower(started.Store), wantStore) {
		t.Errorf("relay store %q, want %s", started.Store, wantStore)
	}

	// SIGTERM drains and exits 0, as Kubernetes and Compose stop it.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("relay exit on SIGTERM: %v\n%s", err, output())
		}
	case <-ctx.Done():
		t.Errorf("relay still running 15s after SIGTERM\n%s", output())
	}
}

// redisConfig asks a Redis server for one setting with CONFIG GET over RESP.
func redisConfig(t *testing.T, addr, name string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(name), name)
	r := bufio.NewReader(c)
	var lines []string
	for len(lines) < 5 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v (read %q)", name, err, lines)
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
		if lines[0] != "*2" {
			t.Fatalf("CONFIG GET %s: reply %q", name, lines)
		}
	}
	return lines[4]
}

// lockedBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
