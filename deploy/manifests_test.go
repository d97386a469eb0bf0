package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/trellis-mesh/trellis/host/config"
)

// decoder decodes the kinds the manifests may hold, strictly: an unknown
// or duplicated field is an error, as `kubectl apply --validate=strict`
// would say, so that a typo fails here rather than in a cluster.
var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// documents splits a YAML stream into its documents, leaving out those
// that hold only comments.
func documents(r io.Reader) ([][]byte, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(doc), "\n") {
			if l := strings.TrimSpace(line); l != "" && l != "---" && !strings.HasPrefix(l, "#") {
				docs = append(docs, doc)
				break
			}
		}
	}
}

// manifests is every object in kubernetes/*.yaml, by kind.
type manifests struct {
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	ingresses    []*networkingv1.Ingress
	budgets      []*policyv1.PodDisruptionBudget
}

func decode(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := documents(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, doc := range docs {
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", file, i+1, err)
				continue
			}
			switch o := obj.(type) {
			case *appsv1.StatefulSet:
				m.statefulSets = append(m.statefulSets, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.ConfigMap:
				m.configMaps = append(m.configMaps, o)
			case *networkingv1.Ingress:
				m.ingresses = append(m.ingresses, o)
			case *policyv1.PodDisruptionBudget:
				m.budgets = append(m.budgets, o)
			default:
				t.Errorf("%s, document %d: a %T, which this test does not check", file, i+1, obj)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func TestStrictDecodingRefusesATypo(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIp: None\n",                    // clusterIP misspelt
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  type: ClusterIP\n  type: ClusterIP\n", // a field twice
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: x\nspec:\n  replicas: three\n",           // a string for a number
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("decoded without an error:\n%s", doc)
		}
	}
}

func (m *manifests) service(name string) *corev1.Service {
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (m *manifests) configMap(name string) *corev1.ConfigMap {
	for _, c := range m.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// containerPort returns the port named name of c, or 0.
func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// TestManifestsAgree decodes every manifest strictly and checks that they
// refer to each other, and to the config and the image, consistently.
func TestManifestsAgree(t *testing.T) {
	m := decode(t)
	if len(m.statefulSets) != 1 || len(m.ingresses) != 1 || len(m.budgets) != 1 {
		t.Fatalf("want one StatefulSet, Ingress and PodDisruptionBudget, have %d, %d, %d", len(m.statefulSets), len(m.ingresses), len(m.budgets))
	}
	sts := m.statefulSets[0]
	pod := sts.Spec.Template
	podLabels := labels.Set(pod.Labels)
	sel := labels.SelectorFromSet(sts.Spec.Selector.MatchLabels)
	if !sel.Matches(podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pods' labels %v", sts.Spec.Selector.MatchLabels, pod.Labels)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: members must start together for JetStream to form", sts.Spec.PodManagementPolicy)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]
	if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Requests.Memory().IsZero() {
		t.Errorf("container without cpu and memory requests: %+v", ctr.Resources)
	}

	// The headless Service names the members for the routes.
	headless := m.service(sts.Spec.ServiceName)
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("serviceName %q: want a headless Service that publishes members not ready yet, have %+v", sts.Spec.ServiceName, headless)
	}
	// Every Service selects the pods and targets ports the container has.
	for _, s := range m.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selects %v, not the pods (%v)", s.Name, s.Spec.Selector, pod.Labels)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal == "" || containerPort(ctr, p.TargetPort.StrVal) == 0 {
				t.Errorf("Service %s port %s: target %v is not a named port of the container", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	// The Ingress sends to a Service port that exists.
	for _, r := range m.ingresses[0].Spec.Rules {
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			s := m.service(b.Name)
			ok := s != nil
			if ok {
				ok = false
				for _, sp := range s.Spec.Ports {
					ok = ok || sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number && b.Port.Number != 0
				}
			}
			if !ok {
				t.Errorf("Ingress path %s: backend %s:%v is no Service port", p.Path, b.Name, b.Port)
			}
		}
	}
	if !labels.SelectorFromSet(m.budgets[0].Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("PodDisruptionBudget does not select the pods")
	}

	// Probes on the admin port.
	for name, p := range map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || containerPort(ctr, p.HTTPGet.Port.StrVal) == 0 {
			t.Errorf("%s probe: want an httpGet on a named container port, have %+v", name, p)
		}
	}
	if ctr.ReadinessProbe != nil && ctr.ReadinessProbe.HTTPGet != nil && ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %s, want /readyz", ctr.ReadinessProbe.HTTPGet.Path)
	}

	// Mounts: every one has a volume; ConfigMaps and Secrets named exist
	// (or are optional, or are made by the operator as README.md says).
	mounts := map[string]string{}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, c := range sts.Spec.VolumeClaimTemplates {
		volumes[c.Name] = corev1.Volume{Name: c.Name}
	}
	for _, vm := range ctr.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("volume mount %s has no volume", vm.Name)
		}
		if vm.SubPath != "" {
			t.Errorf("volume mount %s uses subPath, which kubelet never updates", vm.Name)
		}
		mounts[vm.Name] = vm.MountPath
	}
	for _, v := range volumes {
		if cm := v.ConfigMap; cm != nil && m.configMap(cm.Name) == nil && (cm.Optional == nil || !*cm.Optional) {
			t.Errorf("volume %s: ConfigMap %s is in no manifest and not optional", v.Name, cm.Name)
		}
	}

	// The config: what --config names is a key of the mounted ConfigMap,
	// and it is a valid config (checked as `trellis run` checks it).
	file := configArg(t, ctr.Args)
	cmVolume := volumeAt(t, ctr, volumes, path.Dir(file))
	if cmVolume.ConfigMap == nil {
		t.Fatalf("%s is not in a ConfigMap volume", file)
	}
	cm := m.configMap(cmVolume.ConfigMap.Name)
	if cm == nil || cm.Data[path.Base(file)] == "" {
		t.Fatalf("ConfigMap %s has no key %s", cmVolume.ConfigMap.Name, path.Base(file))
	}
	src := secretsFor(t, cm.Data[path.Base(file)], ctr, volumes)
	cfg, err := config.Parse([]byte(src), file)
	if err != nil {
		t.Fatalf("the ConfigMap's config is refused:\n%v", err)
	}
	if cfg.DataDir != mounts["data"] {
		t.Errorf("data_dir %s is not the data volume (%s)", cfg.DataDir, mounts["data"])
	}
	if port := portOf(t, cfg.HTTP.Listen); port != containerPort(ctr, "http") {
		t.Errorf("http listens on %d, the container's http port is %d", port, containerPort(ctr, "http"))
	}
	if port := portOf(t, cfg.Admin.Listen); port != containerPort(ctr, "admin") {
		t.Errorf("the admin endpoint (the probes) listens on %d, the container's admin port is %d", port, containerPort(ctr, "admin"))
	}
	if port := portOf(t, cfg.NATS.Cluster.Listen); port != containerPort(ctr, "cluster") {
		t.Errorf("cluster listens on %d, the container's cluster port is %d", port, containerPort(ctr, "cluster"))
	}
	// One route per member, by its stable name through the headless Service.
	var want []string
	for i := range int(*sts.Spec.Replicas) {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", sts.Name, i, headless.Name, containerPort(ctr, "cluster")))
	}
	var have []string
	for _, r := range cfg.NATS.Cluster.Routes {
		u, err := url.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		have = append(have, u.Host)
	}
	if strings.Join(have, " ") != strings.Join(want, " ") {
		t.Errorf("routes %v, want one per member: %v", have, want)
	}
	if cfg.NATS.Replicas > int(*sts.Spec.Replicas) {
		t.Errorf("replicas %d, more than the %d members", cfg.NATS.Replicas, *sts.Spec.Replicas)
	}
	// The route password is a file of the mounted Secret.
	secret := volumeAt(t, ctr, volumes, path.Dir(cfg.NATS.Cluster.PasswordFile))
	if secret.Secret == nil || len(secret.Secret.Items) != 1 || secret.Secret.Items[0].Path != path.Base(cfg.NATS.Cluster.PasswordFile) {
		t.Errorf("password_file %s is not an item of a Secret volume", cfg.NATS.Cluster.PasswordFile)
	}

	// Every plugin is a module the image has, or one from the plugins
	// ConfigMap.
	built := builtPlugins(t)
	image := imagePaths(t)
	for _, p := range cfg.Plugins {
		dir, name := path.Split(p.Path)
		switch {
		case p.Source != "":
			t.Errorf("plugin %s: source = builds at run time, and the image has no toolchain; use path =", p.Name)
		case path.Clean(dir) == image.plugins:
			if !built[name] {
				t.Errorf("plugin %s: %s is not built into the image by build-plugins.sh", p.Name, p.Path)
			}
		case path.Clean(dir) == mounts["plugins"]:
		default:
			t.Errorf("plugin %s: %s is neither in the image (%s) nor in the plugins ConfigMap (%s)", p.Name, p.Path, image.plugins, mounts["plugins"])
		}
	}
	if image.config != file {
		t.Errorf("the image's default config is %s, the StatefulSet's %s", image.config, file)
	}
}

// secretsFor checks what the config src reads with env() and file(): each
// variable is set in the container from a Secret, and each file is a key
// of a mounted Secret volume. It sets the variables and writes the files
// (under a temporary directory, which src is changed to name) with test
// values, and returns src so changed, for config.Parse to read.
func secretsFor(t *testing.T, src string, ctr corev1.Container, volumes map[string]corev1.Volume) string {
	t.Helper()
	for _, m := range regexp.MustCompile(`\benv\("([^"]+)"\)`).FindAllStringSubmatch(src, -1) {
		var from *corev1.SecretKeySelector
		for _, e := range ctr.Env {
			if e.Name == m[1] && e.ValueFrom != nil {
				from = e.ValueFrom.SecretKeyRef
			}
		}
		if from == nil || from.Name == "" || from.Key == "" {
			t.Errorf("the config reads env(%q): the container has no such variable from a Secret", m[1])
		}
		t.Setenv(m[1], "test-"+strings.ToLower(m[1]))
	}
	tmp := t.TempDir()
	for _, m := range regexp.MustCompile(`\bfile\("([^"]+)"\)`).FindAllStringSubmatch(src, -1) {
		p := m[1]
		v := volumeAt(t, ctr, volumes, path.Dir(p))
		found := false
		if v.Secret != nil {
			for _, it := range v.Secret.Items {
				found = found || it.Path == path.Base(p)
			}
		}
		if !found {
			t.Errorf("the config reads file(%q): no item of a Secret volume", p)
		}
		local := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, []byte("test:test-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		src = strings.ReplaceAll(src, m[0], fmt.Sprintf("file(%q)", local))
	}
	return src
}

func configArg(t *testing.T, args []string) string {
	t.Helper()
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("args %v: no --config", args)
	return ""
}

// volumeAt returns the volume mounted at dir.
func volumeAt(t *testing.T, c corev1.Container, volumes map[string]corev1.Volume, dir string) corev1.Volume {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) == path.Clean(dir) {
			return volumes[vm.Name]
		}
	}
	t.Fatalf("nothing is mounted at %s", dir)
	return corev1.Volume{}
}

func portOf(t *testing.T, hostport string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// builtPlugins lists the modules build-plugins.sh makes.
func builtPlugins(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("build-plugins.sh")
	if err != nil {
		t.Fatal(err)
	}
	list := regexp.MustCompile(`(?s)\nplugins="([^"]*)"`).FindSubmatch(b)
	if list == nil {
		t.Fatal(`build-plugins.sh: no plugins="..." list`)
	}
	out := map[string]bool{}
	for _, src := range strings.Fields(string(list[1])) {
		if _, err := os.Stat(filepath.Join("..", src)); err != nil {
			t.Errorf("build-plugins.sh builds %s: %v", src, err)
		}
		out[path.Base(src)+".wasm"] = true
	}
	return out
}

// imageLayout is what the Containerfile puts where.
type imageLayout struct{ plugins, config string }

func imagePaths(t *testing.T) imageLayout {
	t.Helper()
	b, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var l imageLayout
	if m := regexp.MustCompile(`(?m)^COPY --from=build /out/plugins (\S+)$`).FindSubmatch(b); m != nil {
		l.plugins = path.Clean(string(m[1]))
	}
	if m := regexp.MustCompile(`(?m)^CMD \["run", "--config", "([^"]+)"\]$`).FindSubmatch(b); m != nil {
		l.config = string(m[1])
	}
	if l.plugins == "" || l.config == "" || !bytes.Contains(b, []byte("deploy/build-plugins.sh /out/trellis /out/plugins")) ||
		!bytes.Contains(b, []byte("CGO_ENABLED=0 go build")) {
		t.Fatalf("Containerfile: want a static build, plugins from build-plugins.sh copied to a directory and a default --config; have %+v", l)
	}
	return l
}
