package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host/bus"
)

// freePorts returns n loopback ports that were free a moment ago: all are
// held open together, so they differ, then released for the servers.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func TestThreeEmbeddedServersFormAJetStreamCluster(t *testing.T) {
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	pw := filepath.Join(t.TempDir(), "route-password")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	buses := make([]*bus.Bus, 3)
	errs := make(chan error, 3)
	for i := range buses {
		go func() {
			// Started together: JetStream's meta group needs a majority.
			b, err := bus.Start(context.Background(), bus.Options{
				Name:     fmt.Sprintf("n%d", i+1),
				Listen:   "127.0.0.1:0",
				StoreDir: t.TempDir(),
				Cluster: bus.Cluster{Name: "test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
					User: "route", PasswordFile: pw},
			})
			buses[i] = b
			errs <- err
		}()
	}
	for range buses {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range buses {
		t.Cleanup(func() { b.Close() })
		if b.Replicas() != bus.DefaultClusterReplicas {
			t.Fatalf("replicas %d, want the clustered default %d", b.Replicas(), bus.DefaultClusterReplicas)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A stream with three replicas can be placed only once all three
	// servers are JetStream peers of one cluster.
	js, err := jetstream.New(buses[0].Conn())
	if err != nil {
		t.Fatal(err)
	}
	var stream jetstream.Stream
	for { // a request made before the meta leader is elected goes unanswered
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		stream, err = js.CreateOrUpdateStream(actx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		acancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("R3 stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Name != "test" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info: %+v %v", info, err)
	}
	// A message published on one member reaches a subscriber on another.
	sub, err := buses[2].Conn().SubscribeSync("hello")
	if err != nil {
		t.Fatal(err)
	}
	buses[2].Conn().Flush()
	for {
		buses[1].Conn().Publish("hello", []byte("x"))
		if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no message crossed the routes")
		}
	}
}

func TestClusterSettingsAreChecked(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(pwFile, nil, 0o600)
	for _, c := range []struct {
		name string
		opts bus.Options
		want string
	}{
		{"open beyond loopback", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "0.0.0.0:6222"}}, "cluster routes would listen on 0.0.0.0:6222 with no authentication"},
		{"routes without listen", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Routes: []string{"nats-route://a:6222"}}}, "set listen"},
		{"random port", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "127.0.0.1:0"}}, "fixed port"},
		{"credentials in a route", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "127.0.0.1:6222", Routes: []string{"nats-route://u:p@a:6222"}}}, "not in a route"},
		{"bad route scheme", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "127.0.0.1:6222", Routes: []string{"http://a:6222"}}}, "want nats-route://"},
		{"user without password", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "127.0.0.1:6222", User: "r"}}, "both a user and a password"},
		{"empty password file", bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "127.0.0.1:6222", User: "r", PasswordFile: pwFile}}, "is empty"},
		{"too many replicas", bus.Options{Listen: "127.0.0.1:0", Replicas: 6}, "1 to 5 copies"},
		{"leaf without url", bus.Options{Listen: "127.0.0.1:0", LeafRemotes: []bus.LeafRemote{{}}}, "no URL"},
		{"leaf with password", bus.Options{Listen: "127.0.0.1:0", LeafRemotes: []bus.LeafRemote{{URLs: []string{"nats-leaf://u:p@hub:7422"}}}}, "credentials file"},
		{"leaf unknown account", bus.Options{Listen: "127.0.0.1:0", LeafRemotes: []bus.LeafRemote{{URLs: []string{"nats-leaf://hub:7422"}, Account: "NOPE"}}}, `account "NOPE"`},
		{"bad domain", bus.Options{Listen: "127.0.0.1:0", JetStreamDomain: "a.b"}, "domain"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := bus.Check(c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	err := bus.Check(bus.Options{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "0.0.0.0:6222"}})
	if !errors.Is(err, bus.ErrUnauthenticated) {
		t.Fatalf("open routes: %v, want ErrUnauthenticated", err)
	}
	for _, ok := range []bus.Options{
		{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "0.0.0.0:6222", User: "r", Password: "p", Routes: []string{"nats-route://trellis-0.trellis:6222", "nats://10.0.0.2:6222"}}},
		{Listen: "127.0.0.1:0", Cluster: bus.Cluster{Listen: "0.0.0.0:6222"}, AllowUnauthenticated: true},
		{Listen: "127.0.0.1:0", LeafRemotes: []bus.LeafRemote{{URLs: []string{"nats-leaf://hub:7422", "tls://hub2:7422"}}}, JetStreamDomain: "edge"},
	} {
		if err := bus.Check(ok); err != nil {
			t.Fatalf("%+v: %v", ok, err)
		}
	}
}

func TestReplicasDefaultToOneUnclustered(t *testing.T) {
	b := start(t, bus.Options{Listen: "127.0.0.1:0"})
	if b.Replicas() != 1 {
		t.Fatalf("replicas %d, want 1", b.Replicas())
	}
}
