// Package kubetier is the control plane of meshcheck's kube tier: a real etcd and a
// real kube-apiserver in one process on loopback, with the kube-controller-manager
// controllers a cluster would run for the objects meshcheck applies, so the kube
// target can be tested against the server it meets on a cluster (server-side apply,
// field managers, CRD validation with CEL, watches, namespace finalization, garbage
// collection) rather than a fake.
//
// It is built as a test binary (`scripts/build-kube-tier.sh`), like the Istio oracle,
// because Kubernetes' own in-process API server harness
// (k8s.io/kubernetes cmd/kube-apiserver/app/testing) takes a testing.TB. Run it with
// KUBE_TIER_KUBECONFIG set: it writes an admin kubeconfig there, prints one
// `control plane ready` line, and runs until SIGTERM or SIGINT, then stops etcd and
// the API server and removes their files.
package kubetier

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// The controllers a cluster runs that matter to what meshcheck applies: namespaces
// are finalized (their objects deleted), owned objects are garbage collected, every
// namespace gets its default ServiceAccount, Deployments get ReplicaSets and those
// Pods, and Services get EndpointSlices. Pods are then run by the stand-in kubelet.
const controllers = "namespace,garbagecollector,serviceaccount,deployment,replicaset,endpointslice"

func TestControlPlane(t *testing.T) {
	kubeconfig := os.Getenv("KUBE_TIER_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("KUBE_TIER_KUBECONFIG is not set: nothing to start")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	started := time.Now()

	etcd, etcdURL := startEtcd(t)
	defer etcd.Close()

	storage := storagebackend.NewDefaultConfig("/registry", nil)
	storage.Transport.ServerList = []string{etcdURL}
	options := apiservertesting.NewDefaultTestServerOptions()
	// Also how long a graceful shutdown waits for open requests (the generic API
	// server's ShutdownTimeout is its RequestTimeout): a test tier stops in seconds.
	options.RequestTimeout = 10 * time.Second
	server, err := apiservertesting.StartTestServer(t, options, []string{
		"--bind-address=127.0.0.1",
		// Stop at once on SIGTERM: no load balancer drains this server.
		"--shutdown-delay-duration=0s",
		"--shutdown-watch-termination-grace-period=0s",
		"--advertise-address=127.0.0.1",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		// The kubelet stand-in's port (pods/log) is at the node's InternalIP, as
		// kubeadm has the API server prefer it; the node's name does not resolve.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
	}, storage)
	if err != nil {
		t.Fatalf("kube-apiserver: %v", err)
	}
	defer server.TearDownFn()

	if err := writeKubeconfig(server, kubeconfig); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	// The controllers stop first: the API server's graceful shutdown waits for the
	// watches they hold open.
	controllersCtx, stopControllers := context.WithCancel(context.Background())
	controllersDone := make(chan struct{})
	go func() {
		defer close(controllersDone)
		runControllers(controllersCtx, t, kubeconfig)
	}()

	fmt.Printf("control plane ready in %s: API server %s, kubeconfig %s\n",
		time.Since(started).Round(time.Millisecond), server.ClientConfig.Host, kubeconfig)
	<-ctx.Done()
	fmt.Println("control plane stopping")
	stopControllers()
	select {
	case <-controllersDone:
	case <-time.After(10 * time.Second):
		t.Log("kube-controller-manager did not stop within 10s; stopping the API server anyway")
	}
}

// startEtcd runs an embedded etcd member on loopback ports the kernel picks.
func startEtcd(t *testing.T) (*embed.Etcd, string) {
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	client := loopbackURL(t)
	peer := loopbackURL(t)
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not become ready in 30s")
	}
	return etcd, client.String()
}

// loopbackURL reserves a free loopback port. etcd takes URLs, not listeners, so the
// port is released again before etcd binds it; nothing else on the machine is
// expected to grab it in between.
func loopbackURL(t *testing.T) url.URL {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	defer listener.Close()
	return url.URL{Scheme: "http", Host: listener.Addr().String()}
}

// writeKubeconfig writes the API server's own loopback credentials (a bearer token
// for the privileged loopback user, and the CA of its loopback certificate) as an
// admin kubeconfig.
func writeKubeconfig(server apiservertesting.TestServer, path string) error {
	c := server.ClientConfig
	config := clientcmdapi.NewConfig()
	config.Clusters["kube-tier"] = &clientcmdapi.Cluster{
		Server:                   c.Host,
		CertificateAuthorityData: c.TLSClientConfig.CAData,
		TLSServerName:            c.TLSClientConfig.ServerName,
	}
	config.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.BearerToken}
	config.Contexts["kube-tier"] = &clientcmdapi.Context{Cluster: "kube-tier", AuthInfo: "admin"}
	config.CurrentContext = "kube-tier"
	return clientcmd.WriteToFile(*config, path)
}

// runControllers runs kube-controller-manager's controllers in this process until
// ctx ends, without leader election and without its own serving port.
func runControllers(ctx context.Context, t *testing.T, kubeconfig string) {
	command := controllermanager.NewControllerManagerCommand()
	command.SetArgs([]string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--controllers=" + controllers,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--controller-shutdown-timeout=5s",
	})
	if err := command.ExecuteContext(ctx); err != nil && ctx.Err() == nil {
		t.Errorf("kube-controller-manager: %v", err)
	}
}
