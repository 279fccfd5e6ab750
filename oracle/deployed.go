package oracle

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubeversion "k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/gatewaycommon"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/inject"
	"istio.io/istio/pkg/kube/kclient"
	"istio.io/istio/pkg/revisions"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/test/env"
	"istio.io/istio/pkg/test/util/file"
)

// DeployedObject is one object Istio's gateway deployment controller applies for a
// Gateway, as far as meshcheck compares it: for the Deployment, the labels and
// annotations of its pod template (what its pods carry).
type DeployedObject struct {
	Gateway     string            `json:"gateway"`
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// deployedObjects runs Istio's DeploymentController
// (pilot/pkg/config/kube/gatewaycommon) over a fake cluster holding the fixtures'
// Namespaces and the named Gateways, with the kube-gateway template from the pinned
// Istio source, and returns what it server-side applies. The fake cluster does not
// apply: each apply is answered as done and read back from the recorded actions.
func deployedObjects(t *testing.T, manifests string, gateways []string) []DeployedObject {
	if len(gateways) == 0 {
		return nil
	}
	var objects []runtime.Object
	for _, doc := range strings.Split(manifests, "\n---") {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(doc), &head) != nil {
			continue
		}
		switch head.Kind {
		case "Namespace":
			ns := &corev1.Namespace{}
			if err := yaml.Unmarshal([]byte(doc), ns); err != nil {
				t.Fatalf("reading Namespace %s: %v", head.Metadata.Name, err)
			}
			objects = append(objects, ns)
		case "Gateway":
			if !slices.Contains(gateways, head.Metadata.Namespace+"/"+head.Metadata.Name) {
				continue
			}
			gw := &gatewayv1.Gateway{}
			if err := yaml.Unmarshal([]byte(doc), gw); err != nil {
				t.Fatalf("reading Gateway %s: %v", head.Metadata.Name, err)
			}
			objects = append(objects, gw)
		}
	}
	client := kube.NewFakeClient()
	client.Kube().Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &kubeversion.Info{Major: "1", Minor: "28"}
	dynamic := client.Dynamic().(*dynamicfake.FakeDynamicClient)
	dynamic.PrependReactor("patch", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	for _, obj := range objects {
		switch o := obj.(type) {
		case *corev1.Namespace:
			kclient.NewWriteClient[*corev1.Namespace](client).Create(o)
		case *gatewayv1.Gateway:
			kclient.NewWriteClient[*gatewayv1.Gateway](client).Create(o)
		}
	}
	stop := test.NewStop(t)
	environment := model.NewEnvironment()
	environment.Watcher = meshwatcher.NewTestWatcher(mesh.DefaultMeshConfig())
	environment.PushContext().InitDone.Store(true)
	tags := revisions.NewTagWatcher(client, "", "istio-system")
	go tags.Run(stop)
	controller := gatewaycommon.NewDeploymentController(client, cluster.ID("Kubernetes"), environment,
		webhookConfig(t), func(func()) {}, tags, "", "istio-system")
	client.RunAndWait(stop)
	go controller.Run(stop)

	// Each Gateway gets its ServiceAccount, Deployment and Service; wait for all.
	want := 3 * len(gateways)
	deadline := time.Now().Add(20 * time.Second)
	for {
		deployed := appliedObjects(t, dynamic.Actions())
		if len(deployed) >= want {
			return deployed
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment controller applied %d objects in 20s, expected %d: %v", len(deployed), want, deployed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appliedObjects reads the ServiceAccounts, Deployments and Services out of the
// server-side applies recorded by the fake cluster, the latest apply of each.
func appliedObjects(t *testing.T, actions []clienttesting.Action) []DeployedObject {
	latest := map[string]DeployedObject{}
	var order []string
	for _, action := range actions {
		patch, ok := action.(clienttesting.PatchAction)
		if !ok || patch.GetPatchType() != types.ApplyPatchType {
			continue
		}
		var obj struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
			Spec     struct {
				Template struct {
					Metadata metav1.ObjectMeta `json:"metadata"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(patch.GetPatch(), &obj); err != nil {
			t.Fatalf("reading an applied object: %v", err)
		}
		owner := ""
		for _, ref := range obj.Metadata.OwnerReferences {
			if ref.Kind == "Gateway" {
				owner = obj.Metadata.Namespace + "/" + ref.Name
			}
		}
		d := DeployedObject{Gateway: owner, Kind: obj.Kind, Name: obj.Metadata.Name,
			Labels: obj.Metadata.Labels, Annotations: obj.Metadata.Annotations}
		switch obj.Kind {
		case "ServiceAccount", "Service":
		case "Deployment":
			d.Kind = "Pod"
			d.Labels = obj.Spec.Template.Metadata.Labels
			d.Annotations = obj.Spec.Template.Metadata.Annotations
		default:
			continue
		}
		key := fmt.Sprintf("%s %s %s", d.Gateway, d.Kind, d.Name)
		if _, seen := latest[key]; !seen {
			order = append(order, key)
		}
		latest[key] = d
	}
	out := make([]DeployedObject, 0, len(order))
	for _, key := range order {
		out = append(out, latest[key])
	}
	return out
}

// webhookConfig is the injection configuration the controller renders with: Istio's
// kube-gateway template from the pinned source, and default values and mesh config.
func webhookConfig(t *testing.T) func() inject.WebhookConfig {
	values, err := inject.NewValuesConfig("global:\n  hub: docker.io/istio\n  tag: pinned\n")
	if err != nil {
		t.Fatal(err)
	}
	templates, err := inject.ParseTemplates(map[string]string{
		"kube-gateway": file.AsStringOrFail(t, filepath.Join(env.IstioSrc,
			"manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml")),
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() inject.WebhookConfig {
		return inject.WebhookConfig{Templates: templates, Values: values, MeshConfig: mesh.DefaultMeshConfig()}
	}
}
