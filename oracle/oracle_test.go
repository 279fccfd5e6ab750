// Package oracle asks Istio's own config generator what istiod would send a proxy for a
// set of fixture manifests. It is a Go test so that it can use Istio's test server
// (istio.io/istio/pilot/test/xds) and traffic simulation (pilot/pkg/simulation), which
// both need a *testing.T; meshcheck builds it once with `go test -c` and runs the binary
// with `-test.run TestOracle`, the request in ORACLE_REQUEST and the answer written to
// ORACLE_OUTPUT.
package oracle

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
)

// Request is what meshcheck asks: the fixtures, the proxies to generate for, and the
// calls to simulate.
type Request struct {
	// Manifests holds every fixture object as YAML documents.
	Manifests string  `json:"manifests"`
	Proxies   []Proxy `json:"proxies"`
	// Deployed names Gateways ("namespace/name") whose objects Istio's deployment
	// controller is asked to render.
	Deployed []string `json:"deployed,omitempty"`
}

// Proxy names one proxy: a Gateway's deployment, or a sidecar in a namespace.
type Proxy struct {
	// Gateway is "namespace/name" of a Gateway API Gateway; empty for a sidecar.
	Gateway string `json:"gateway,omitempty"`
	// Namespace is the sidecar's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Pod is, for the sidecar of a backend pod, that pod (a Pod object as JSON, from
	// its Deployment's template); the oracle makes it running and ready at the
	// proxy's address, so Istio finds the Services it serves and builds their inbound
	// clusters. Empty for a client sidecar.
	Pod   json.RawMessage `json:"pod,omitempty"`
	Calls []Call          `json:"calls,omitempty"`
}

// Call is one simulated request.
type Call struct {
	// Service is "namespace/name" of the Service an east-west call is addressed to: the
	// simulated call goes to that Service's cluster IP, as iptables would capture it.
	Service string `json:"service,omitempty"`
	// Address, when given, is where the call goes instead of a Service's cluster IP
	// (a pod's own address).
	Address string            `json:"address,omitempty"`
	Port    int               `json:"port"`
	Host    string            `json:"host"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	TLS     bool              `json:"tls,omitempty"`
}

// Answer is the generated configuration per proxy.
type Answer struct {
	Proxies  []ProxyAnswer    `json:"proxies"`
	Deployed []DeployedObject `json:"deployed,omitempty"`
}

// ProxyAnswer holds the xDS resources as protojson, and the simulated calls.
type ProxyAnswer struct {
	Clusters  []json.RawMessage `json:"clusters"`
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
	Calls     []CallAnswer      `json:"calls"`
}

// CallAnswer is what the simulation matched for a call.
type CallAnswer struct {
	Listener    string `json:"listener"`
	FilterChain string `json:"filterChain"`
	RouteConfig string `json:"routeConfig"`
	VirtualHost string `json:"virtualHost"`
	Route       string `json:"route"`
	Cluster     string `json:"cluster"`
	Error       string `json:"error,omitempty"`
}

func TestOracle(t *testing.T) {
	in, err := os.ReadFile(os.Getenv("ORACLE_REQUEST"))
	if err != nil {
		t.Fatalf("reading the request: %v", err)
	}
	var req Request
	if err := json.Unmarshal(in, &req); err != nil {
		t.Fatalf("decoding the request: %v", err)
	}
	kube, istio := splitManifests(req.Manifests)
	kube = withGatewayAPIDefaults(kube)
	kube, clusterIPs := withClusterIPs(kube)
	for i, p := range req.Proxies {
		if p.Gateway != "" {
			kube += gatewayDeployment(p.Gateway, i, req.Manifests)
		}
		if len(p.Pod) > 0 {
			kube += runningPod(t, p.Pod, i)
		}
	}
	// Istio's own kinds (DestinationRule, ...) go to the config store, as istiod reads
	// them through its CRD client; Kubernetes and Gateway API objects go to the fake
	// Kubernetes API, which the gateway controller watches.
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{KubernetesObjectString: kube, Configs: istioConfigs(t, istio)})
	var answer Answer
	for i, p := range req.Proxies {
		proxy := proxyFor(p, i)
		sim := simulation.NewSimulation(t, s, s.SetupProxy(proxy))
		var pa ProxyAnswer
		for _, c := range sim.Clusters {
			pa.Clusters = append(pa.Clusters, marshal(t, c))
		}
		for _, l := range sim.Listeners {
			pa.Listeners = append(pa.Listeners, marshal(t, l))
		}
		for _, r := range sim.Routes {
			pa.Routes = append(pa.Routes, marshal(t, r))
		}
		for _, c := range p.Calls {
			headers := http.Header{}
			for k, v := range c.Headers {
				headers.Set(k, v)
			}
			call := simulation.Call{
				Port:       c.Port,
				Path:       c.Path,
				HostHeader: c.Host,
				Headers:    headers,
				Protocol:   simulation.HTTP,
				CallMode:   simulation.CallModeGateway,
			}
			if p.Gateway == "" {
				call.CallMode = simulation.CallModeOutbound
				call.Address = clusterIPs[c.Service]
				if c.Address != "" {
					call.Address = c.Address
				}
			}
			if c.TLS {
				call.TLS = simulation.TLS
			}
			r := sim.Run(call)
			ca := CallAnswer{
				Listener:    r.ListenerMatched,
				FilterChain: r.FilterChainMatched,
				RouteConfig: r.RouteConfigMatched,
				VirtualHost: r.VirtualHostMatched,
				Route:       r.RouteMatched,
				Cluster:     r.ClusterMatched,
			}
			if r.Error != nil {
				ca.Error = r.Error.Error()
			}
			pa.Calls = append(pa.Calls, ca)
		}
		answer.Proxies = append(answer.Proxies, pa)
	}
	answer.Deployed = deployedObjects(t, req.Manifests, req.Deployed)
	out, err := json.MarshalIndent(answer, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("ORACLE_OUTPUT"), out, 0o644); err != nil {
		t.Fatalf("writing the answer: %v", err)
	}
}

func marshal(t *testing.T, m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func proxyIP(index int) string {
	return fmt.Sprintf("10.255.0.%d", index+1)
}

func proxyFor(p Proxy, index int) *model.Proxy {
	if p.Gateway != "" {
		namespace, name, _ := strings.Cut(p.Gateway, "/")
		labels := map[string]string{"gateway.networking.k8s.io/gateway-name": name}
		return &model.Proxy{
			Type:            model.Router,
			ID:              fmt.Sprintf("%s-istio-0.%s", name, namespace),
			IPAddresses:     []string{proxyIP(index)},
			ConfigNamespace: namespace,
			Labels:          labels,
			Metadata:        &model.NodeMetadata{Labels: labels, Namespace: namespace},
		}
	}
	if len(p.Pod) > 0 {
		var pod struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(p.Pod, &pod)
		return &model.Proxy{
			Type:            model.SidecarProxy,
			ID:              fmt.Sprintf("%s.%s", pod.Metadata.Name, p.Namespace),
			IPAddresses:     []string{proxyIP(index)},
			ConfigNamespace: p.Namespace,
			Labels:          pod.Metadata.Labels,
			Metadata:        &model.NodeMetadata{Labels: pod.Metadata.Labels, Namespace: p.Namespace},
		}
	}
	return &model.Proxy{
		Type:            model.SidecarProxy,
		ID:              fmt.Sprintf("meshcheck-client-0.%s", p.Namespace),
		IPAddresses:     []string{proxyIP(index)},
		ConfigNamespace: p.Namespace,
		Metadata:        &model.NodeMetadata{Namespace: p.Namespace},
	}
}

// gatewayDeployment stands in for istiod's gateway deployment controller: the
// `<name>-istio` Service with the listeners' ports and one ready pod behind it, so the
// generated Istio Gateway (which selects its proxies through that Service) applies to
// the proxy we generate for.
func gatewayDeployment(ref string, index int, manifests string) string {
	namespace, name, _ := strings.Cut(ref, "/")
	ports := listenerPorts(namespace, name, manifests)
	var svcPorts, podPorts strings.Builder
	for _, port := range ports {
		fmt.Fprintf(&svcPorts, "  - name: port-%d\n    port: %d\n    targetPort: %d\n", port, port, port)
		fmt.Fprintf(&podPorts, "    - containerPort: %d\n", port)
	}
	return fmt.Sprintf(`
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s-istio
  namespace: %[2]s
spec:
  selector:
    gateway.networking.k8s.io/gateway-name: %[1]s
  ports:
%[3]s---
apiVersion: v1
kind: Pod
metadata:
  name: %[1]s-istio-0
  namespace: %[2]s
  labels:
    gateway.networking.k8s.io/gateway-name: %[1]s
spec:
  containers:
  - name: istio-proxy
    image: istio/proxyv2
    ports:
%[4]sstatus:
  phase: Running
  podIP: %[5]s
  podIPs:
  - ip: %[5]s
  conditions:
  - type: Ready
    status: "True"
`, name, namespace, svcPorts.String(), podPorts.String(), proxyIP(index))
}

// runningPod is the backend pod of a server-side sidecar as the kubelet reports it:
// running and ready at the proxy's address.
func runningPod(t *testing.T, pod json.RawMessage, index int) string {
	var obj map[string]any
	if err := json.Unmarshal(pod, &obj); err != nil {
		t.Fatalf("reading the pod of proxy %d: %v", index, err)
	}
	obj["status"] = map[string]any{
		"phase":      "Running",
		"podIP":      proxyIP(index),
		"podIPs":     []any{map[string]any{"ip": proxyIP(index)}},
		"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatalf("writing the pod of proxy %d: %v", index, err)
	}
	return "\n---\n" + string(out)
}

// listenerPorts reads the Gateway's listener ports from the manifests.
func listenerPorts(namespace, name, manifests string) []int {
	var ports []int
	for _, doc := range strings.Split(manifests, "\n---") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Spec struct {
				Listeners []struct {
					Port int `json:"port"`
				} `json:"listeners"`
			} `json:"spec"`
		}
		if yaml.Unmarshal([]byte(doc), &obj) != nil || obj.Kind != "Gateway" {
			continue
		}
		if obj.Metadata.Name != name || obj.Metadata.Namespace != namespace {
			continue
		}
		for _, l := range obj.Spec.Listeners {
			ports = append(ports, l.Port)
		}
	}
	return ports
}

// splitManifests separates Istio's own configuration (networking.istio.io and
// security.istio.io objects) from Kubernetes and Gateway API objects.
func splitManifests(manifests string) (kube, istio string) {
	for _, doc := range strings.Split(manifests, "\n---") {
		var obj struct {
			APIVersion string `json:"apiVersion"`
		}
		if yaml.Unmarshal([]byte(doc), &obj) != nil || obj.APIVersion == "" {
			continue
		}
		if strings.Contains(obj.APIVersion, ".istio.io/") {
			istio += "\n---\n" + doc
		} else {
			kube += "\n---\n" + doc
		}
	}
	return kube, istio
}

// istioConfigs parses Istio's own kinds as istiod's CRD client hands them over: with
// the cluster's domain suffix in their metadata (crdclient sets `Domain`), which
// `ResolveShortnameToFQDN` (pilot/pkg/model/config.go) needs to expand a short
// DestinationRule host (`backend` to `backend.<namespace>.svc.cluster.local`). The test
// server's ConfigString leaves it empty, so a short host would name nothing.
func istioConfigs(t *testing.T, manifests string) []config.Config {
	configs, _, err := crd.ParseInputs(manifests)
	if err != nil {
		t.Fatalf("reading Istio objects: %v", err)
	}
	now := time.Now()
	for i := range configs {
		configs[i].Domain = "cluster.local"
		if configs[i].Namespace == "" {
			configs[i].Namespace = "default"
		}
		if configs[i].CreationTimestamp.IsZero() {
			configs[i].CreationTimestamp = now
		}
	}
	return configs
}

// withClusterIPs gives every Service without a `spec.clusterIP` one, as the API server
// would on creation; the fake API server assigns none. Without it Istio reads the
// Service's address as 0.0.0.0 (pilot/pkg/serviceregistry/kube/conversion.go), so a
// TCP port's outbound listener would be the wildcard one instead of `<clusterIP>_<port>`
// (HTTP ports share the wildcard `0.0.0.0_<port>` listener and route by Host either
// way). Returns the manifests and each Service's address by "namespace/name", where
// the simulated east-west calls go.
func withClusterIPs(kube string) (string, map[string]string) {
	addresses := map[string]string{}
	var out strings.Builder
	next := 1
	for _, doc := range strings.Split(kube, "\n---") {
		var obj map[string]any
		if yaml.Unmarshal([]byte(doc), &obj) != nil || obj["kind"] != "Service" {
			out.WriteString("\n---" + doc)
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		spec, _ := obj["spec"].(map[string]any)
		if meta == nil || spec == nil {
			out.WriteString("\n---" + doc)
			continue
		}
		namespace, _ := meta["namespace"].(string)
		if namespace == "" {
			namespace = "default"
		}
		name, _ := meta["name"].(string)
		address, _ := spec["clusterIP"].(string)
		if address == "" {
			address = fmt.Sprintf("10.96.%d.%d", next/250, next%250+1)
			next++
			spec["clusterIP"] = address
		}
		addresses[namespace+"/"+name] = address
		b, err := yaml.Marshal(obj)
		if err != nil {
			out.WriteString("\n---" + doc)
			continue
		}
		out.WriteString("\n---\n" + string(b))
	}
	return out.String(), addresses
}

// withGatewayAPIDefaults applies the HTTPRoute defaults of the Gateway API CRD, as the
// API server does when it stores a route (the `default:` values in
// `config/crd/standard/gateway.networking.k8s.io_httproutes.yaml`); the fake API server
// applies none, and Istio reads stored objects. The ones that change what Istio
// generates: a rule without matches matches `PathPrefix /`, a match without a path too
// (Istio's `createURIMatch` would dereference the missing path), a redirect's status
// code is 302.
func withGatewayAPIDefaults(kube string) string {
	var out strings.Builder
	for _, doc := range strings.Split(kube, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj map[string]any
		if yaml.Unmarshal([]byte(doc), &obj) != nil || obj["kind"] != "HTTPRoute" {
			out.WriteString("\n---" + doc)
			continue
		}
		spec, _ := obj["spec"].(map[string]any)
		if spec == nil {
			out.WriteString("\n---" + doc)
			continue
		}
		rootPrefix := func() map[string]any {
			return map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}
		}
		if _, ok := spec["rules"]; !ok {
			spec["rules"] = []any{map[string]any{"matches": []any{rootPrefix()}}}
		}
		rules, _ := spec["rules"].([]any)
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			if rule == nil {
				continue
			}
			if _, ok := rule["matches"]; !ok {
				rule["matches"] = []any{rootPrefix()}
			}
			matches, _ := rule["matches"].([]any)
			for _, m := range matches {
				match, _ := m.(map[string]any)
				if match == nil {
					continue
				}
				path, ok := match["path"].(map[string]any)
				if !ok {
					match["path"] = rootPrefix()["path"]
					continue
				}
				if _, ok := path["type"]; !ok {
					path["type"] = "PathPrefix"
				}
				if _, ok := path["value"]; !ok {
					path["value"] = "/"
				}
			}
			filters, _ := rule["filters"].([]any)
			for _, f := range filters {
				filter, _ := f.(map[string]any)
				redirect, _ := filter["requestRedirect"].(map[string]any)
				if redirect == nil {
					continue
				}
				if _, ok := redirect["statusCode"]; !ok {
					redirect["statusCode"] = 302
				}
			}
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			out.WriteString("\n---" + doc)
			continue
		}
		out.WriteString("\n---\n" + string(b))
	}
	return out.String()
}
