package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// TestAuthenticatedBusKeepsClientsToWhatTheConfigAllows runs real plugins
// on a bus with users and exports: clients without credentials are
// refused; a user allowed one subject cannot publish to a handler; a user
// without limits reaches exported subjects only, and only through the
// handler's policy; plugin traffic is invisible to clients unless exported
// as a stream.
func TestAuthenticatedBusKeepsClientsToWhatTheConfigAllows(t *testing.T) {
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.Bus.Users = []bus.User{
			{Name: "app", Password: "app-pw", Permissions: bus.Permissions{
				PublishAllow: []string{"greet"}, SubscribeAllow: []string{"_INBOX.>"},
			}},
			{Name: "ops", Password: "ops-pw"},
		}
		o.Bus.Export = []string{"greet", "echo", "orders.created"}
		o.Bus.ExportStream = []string{"notifications.>"}
	})
	h.Load("testpolicy", trellistest.Wasm(t, "testdata/testpolicy"), func(s *host.Spec) { s.Policy = true })
	h.Load("echo", trellistest.Wasm(t, echoSrc), func(s *host.Spec) {
		s.Policies = []host.PolicyRef{{Name: "testpolicy"}}
	})
	h.Load("greet", trellistest.Wasm(t, greetSrc))
	h.Load("orders-enrich", trellistest.Wasm(t, enrichSrc), func(s *host.Spec) {
		s.Grants.Publish = []string{"orders.enriched", "orders.rejected"}
	})
	h.Load("orders-notify", trellistest.Wasm(t, notifySrc), func(s *host.Spec) {
		s.Grants.Publish = []string{"notifications.>"}
	})

	if nc, err := nats.Connect(h.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v, want an authorization violation", err)
	}

	violations := make(chan error, 8)
	app, err := nats.Connect(h.ClientURL(), nats.UserInfo("app", "app-pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ops, err := nats.Connect(h.ClientURL(), nats.UserInfo("ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()

	if m, err := app.Request("greet", []byte("Ada"), 5*time.Second); err != nil || string(m.Data) != "Hello, Ada!" {
		t.Fatalf("app's request to greet: %v %v", m, err)
	}
	// app may not send to the echo handler, policy or not.
	if _, err := app.Request("echo", []byte("x"), time.Second); err == nil {
		t.Fatal("app reached echo beyond its permissions")
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("app's publish to echo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation reported for app's publish to echo")
	}
	// ops reaches echo through the export, and through its policy.
	m := nats.NewMsg("echo")
	m.Header.Set("X-Policy", "reject")
	if r, err := ops.RequestMsg(m, 5*time.Second); err != nil || r.Header.Get("Nats-Service-Error-Code") != "403" {
		t.Fatalf("ops's request past the policy: %v %v", r, err)
	}

	// Plugin traffic: ops subscribes to everything and sees only what is
	// exported as a stream, never orders.enriched or a plugin's inbox.
	spy, err := ops.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	ops.Flush()
	if err := ops.Publish("orders.created", []byte(`{"id":"7","item":"book","qty":1,"customer":"ada@example.com"}`)); err != nil {
		t.Fatal(err)
	}
	first, err := spy.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no notification reached ops: %v\n%s", err, h.Logs())
	}
	if first.Subject != "orders.created" {
		// ops's own publish is in its account; skip it.
		t.Fatalf("first message %s, want ops's own orders.created", first.Subject)
	}
	next, err := spy.NextMsg(5 * time.Second)
	if err != nil || next.Subject != "notifications.email" {
		t.Fatalf("second message %v %v, want the exported notifications.email", next, err)
	}
	if extra, err := spy.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("ops saw plugin traffic on %s", extra.Subject)
	}
	// A client cannot answer in place of a plugin: ops subscribes to greet
	// and the host's own requests still reach only the plugin.
	if _, err := ops.Subscribe("greet", func(m *nats.Msg) { m.Respond([]byte("forged")) }); err != nil {
		t.Fatal(err)
	}
	ops.Flush()
	for i := 0; i < 5; i++ {
		r, err := h.Conn().Request("greet", []byte("Bo"), 5*time.Second)
		if err != nil || string(r.Data) != "Hello, Bo!" {
			t.Fatalf("greet answered %v %v", r, err)
		}
	}
}

// TestHostStartsWithUsersInANATSConfigFile gives the embedded server a
// nats-server file with authorization users, as --nats-config does: the
// host still connects (with its own credential), plugins keep their KV,
// and the file's users reach exported subjects.
func TestHostStartsWithUsersInANATSConfigFile(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte(`authorization { users = [ { user: "carol", password: "s3cret" } ] }`+"\n"), 0o600)
	h := trellistest.NewHost(t, func(o *host.Options) {
		o.Bus.ConfigFile = conf
		o.Bus.Export = []string{"orders.enriched", "orders.get.>"}
	})
	h.Load("orders-store", trellistest.Wasm(t, "../examples/mesh/orders-store"), func(s *host.Spec) { s.KVNamespace = "orders" })
	h.Load("orders-get", trellistest.Wasm(t, "../examples/mesh/orders-get"), func(s *host.Spec) { s.KVNamespace = "orders" })
	if nc, err := nats.Connect(h.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("a client without credentials got in")
	}
	carol, err := nats.Connect(h.ClientURL(), nats.UserInfo("carol", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	if err := carol.Publish("orders.enriched", []byte(`{"id":"9","item":"pen"}`)); err != nil {
		t.Fatal(err)
	}
	carol.Flush()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := carol.Request("orders.get.one", []byte("9"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Nats-Service-Error-Code") == "" {
			if !strings.Contains(string(m.Data), `"item":"pen"`) {
				t.Fatalf("order 9: %s", m.Data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order 9 never stored: %v %s\n%s", m.Header, m.Data, h.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPluginKVWorksAfterTheBucketIsDeleted deletes the KV bucket's stream
// from an outside client (possible on an open bus) and expects plugins'
// kv_set and kv_get to work again at once, not to fail until a restart.
func TestPluginKVWorksAfterTheBucketIsDeleted(t *testing.T) {
	h := trellistest.NewHost(t)
	h.Load("orders-store", trellistest.Wasm(t, "../examples/mesh/orders-store"), func(s *host.Spec) { s.KVNamespace = "orders" })
	h.Load("orders-get", trellistest.Wasm(t, "../examples/mesh/orders-get"), func(s *host.Spec) { s.KVNamespace = "orders" })
	store := func(id string) {
		t.Helper()
		// orders-store answers a request, so the write is done when it replies.
		m := h.Request("orders.enriched", []byte(`{"id":"`+id+`"}`), 5*time.Second)
		if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
			t.Fatalf("store order %s: %s %s", id, code, m.Header.Get("Nats-Service-Error"))
		}
	}
	get := func(id string) *nats.Msg { return h.Request("orders.get.x", []byte(id), 5*time.Second) }
	store("1")
	if m := get("1"); !strings.Contains(string(m.Data), `"id":"1"`) {
		t.Fatalf("order 1: %v %s", m.Header, m.Data)
	}
	js, err := jetstream.New(h.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), "KV_trellis"); err != nil {
		t.Fatal(err)
	}
	if m := get("1"); m.Header.Get("Nats-Service-Error-Code") != "404" {
		t.Fatalf("order 1 after the bucket was deleted: %v %s, want 404", m.Header, m.Data)
	}
	store("2")
	if m := get("2"); !strings.Contains(string(m.Data), `"id":"2"`) {
		t.Fatalf("order 2 after the bucket came back: %v %s", m.Header, m.Data)
	}
}
