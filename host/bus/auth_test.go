package bus_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/trellistest"
)

// serve answers requests on subject from the host's own connection, as a
// plugin's subscription does.
func serve(t *testing.T, b *bus.Bus, subject, answer string) {
	t.Helper()
	sub, err := b.Conn().Subscribe(subject, func(m *nats.Msg) { m.Respond([]byte(answer)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// asyncErrs collects a client's asynchronous errors (permission violations).
func asyncErrs() (nats.Option, chan error) {
	ch := make(chan error, 16)
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case ch <- err:
		default:
		}
	}), ch
}

func authed(t *testing.T) *bus.Bus {
	return start(t, bus.Options{
		Listen:   "127.0.0.1:0",
		StoreDir: t.TempDir(),
		Users: []bus.User{
			{Name: "alice", Password: "wonderland"},
			{Name: "bob", Password: "builder", Permissions: bus.Permissions{
				PublishAllow: []string{"greet"}, SubscribeAllow: []string{"_INBOX.>"},
			}},
		},
		Export:       []string{"greet", "orders.>"},
		ExportStream: []string{"notifications.>"},
	})
}

func TestUnauthenticatedClientIsRefusedWhileHostServes(t *testing.T) {
	b := authed(t)
	serve(t, b, "greet", "hello")
	if !b.Authenticated() {
		t.Fatal("a bus with users says it is not authenticated")
	}
	for _, opts := range [][]nats.Option{nil, {nats.UserInfo("alice", "wrong")}, {nats.UserInfo("mallory", "x")}} {
		if nc, err := nats.Connect(b.ClientURL(), opts...); err == nil {
			nc.Close()
			t.Fatalf("a client with options %d got in", len(opts))
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("refused with %v, want an authorization violation", err)
		}
	}
	alice := connect(t, b.ClientURL(), nats.UserInfo("alice", "wonderland"))
	m, err := alice.Request("greet", nil, 2*time.Second)
	if err != nil || string(m.Data) != "hello" {
		t.Fatalf("alice's request to an exported subject: %v %v", m, err)
	}
}

func TestClientsReachOnlyExportedSubjects(t *testing.T) {
	b := authed(t)
	serve(t, b, "greet", "from the host")
	serve(t, b, "internal.secret", "secret")
	alice := connect(t, b.ClientURL(), nats.UserInfo("alice", "wonderland"))

	// A subject the host serves but does not export: nobody answers.
	if _, err := alice.Request("internal.secret", nil, 300*time.Millisecond); err == nil {
		t.Fatal("a client reached an unexported plugin subject")
	}
	// A client cannot read plugin traffic, KV or JetStream API subjects, nor
	// steal requests meant for a plugin.
	spy, err := alice.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Subscribe("greet", func(m *nats.Msg) { m.Respond([]byte("forged")) }); err != nil {
		t.Fatal(err)
	}
	alice.Flush()
	for i := 0; i < 5; i++ {
		m, err := b.Conn().Request("greet", nil, 2*time.Second)
		if err != nil || string(m.Data) != "from the host" {
			t.Fatalf("host's request %d answered %q %v, want only the host's own answer", i, m.Data, err)
		}
	}
	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "trellis"})
	if err != nil {
		t.Fatalf("the host's account has no JetStream: %v", err)
	}
	if _, err := kv.Put(ctx, "orders.1", []byte("private")); err != nil {
		t.Fatal(err)
	}
	b.Conn().Publish("internal.secret", []byte("private"))
	b.Conn().Flush()
	// Only what export_stream names reaches the client.
	b.Conn().Publish("notifications.email", []byte("public"))
	b.Conn().Flush()
	m, err := spy.NextMsg(2 * time.Second)
	if err != nil || m.Subject != "notifications.email" {
		t.Fatalf("first message a client saw: %v %v, want notifications.email", m, err)
	}
	if m, err := spy.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("a client saw %s %q", m.Subject, m.Data)
	}
	// The client account has no JetStream of its own, and cannot reach the host's.
	cjs, _ := jetstream.New(alice)
	if _, err := cjs.KeyValue(ctx, "trellis"); err == nil {
		t.Fatal("a client opened the host's KV bucket")
	}
	if err := cjs.DeleteStream(ctx, "KV_trellis"); err == nil {
		t.Fatal("a client deleted the host's KV stream")
	}
	if _, err := kv.Get(ctx, "orders.1"); err != nil {
		t.Fatalf("the host's KV after a client's attempts: %v", err)
	}
}

func TestUserPermissionsLimitPublishing(t *testing.T) {
	b := authed(t)
	got := make(chan string, 4)
	sub, err := b.Conn().Subscribe("orders.>", func(m *nats.Msg) { got <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	serve(t, b, "greet", "hi bob")
	b.Conn().Flush()
	errOpt, errs := asyncErrs()
	bob := connect(t, b.ClientURL(), nats.UserInfo("bob", "builder"), errOpt)
	if m, err := bob.Request("greet", nil, 2*time.Second); err != nil || string(m.Data) != "hi bob" {
		t.Fatalf("bob's allowed request: %v %v", m, err)
	}
	bob.Publish("orders.created", []byte(`{"id":"1"}`))
	bob.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("bob's publish to orders.created: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no permissions violation for a publish outside bob's permissions")
	}
	// alice, without limits, reaches orders.> through the export.
	alice := connect(t, b.ClientURL(), nats.UserInfo("alice", "wonderland"))
	alice.Publish("orders.created", nil)
	alice.Flush()
	select {
	case s := <-got:
		if s != "orders.created" {
			t.Fatalf("host got %s", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("alice's event never reached the host")
	}
	select {
	case s := <-got:
		t.Fatalf("host got a second event %s (bob's got through)", s)
	default:
	}
}

func TestHostStartsWithUsersFromANATSConfigFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string]string{
		"authorization": `authorization { users = [ { user: "carol", password: "secret" } ] }`,
		"single user":   `authorization { user: "carol", password: "secret" }`,
		"accounts":      `accounts { APP { users = [ { user: "carol", password: "secret" } ] } }`,
		"bcrypt":        `authorization { users = [ { user: "carol", password: "` + string(hash) + `" } ] }`,
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "nats.conf")
			os.WriteFile(file, []byte("listen: 127.0.0.1:-1\n"+conf+"\n"), 0o600)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b, err := bus.Start(ctx, bus.Options{ConfigFile: file, StoreDir: t.TempDir(), Export: []string{"greet"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			serve(t, b, "greet", "hello carol")
			if _, err := nats.Connect(b.ClientURL()); err == nil {
				t.Fatal("a client without credentials got in")
			}
			carol := connect(t, b.ClientURL(), nats.UserInfo("carol", "secret"))
			if m, err := carol.Request("greet", nil, 2*time.Second); err != nil || string(m.Data) != "hello carol" {
				t.Fatalf("carol's request: %v %v", m, err)
			}
			js, _ := jetstream.New(b.Conn())
			if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t"}); err != nil {
				t.Fatalf("no JetStream for the host: %v", err)
			}
		})
	}
}

func TestNKeyUser(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	file := filepath.Join(t.TempDir(), "user.nk")
	os.WriteFile(file, seed, 0o600)
	b := start(t, bus.Options{Listen: "127.0.0.1:0", Users: []bus.User{{Name: "svc", NKey: pub}}, Export: []string{"greet"}})
	serve(t, b, "greet", "hi")
	nc, err := bus.Connect(b.ClientURL(), bus.Credentials{NKeySeedFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if m, err := nc.Request("greet", nil, 2*time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("nkey user's request: %v %v", m, err)
	}
	if _, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", Users: []bus.User{{Name: "x", NKey: "nonsense"}}}); err == nil || !strings.Contains(err.Error(), `user "x"`) {
		t.Fatalf("a bad nkey: %v", err)
	}
}

func TestRefusesUnauthenticatedBusBeyondLoopback(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte("port: -1\n"), 0o600) // no host: every interface
	for _, opts := range []bus.Options{
		{Listen: "0.0.0.0:0"},
		{Listen: "[::]:0"},
		{Listen: "192.0.2.1:4222"},
		{ConfigFile: conf},
	} {
		_, err := bus.Start(context.Background(), opts)
		if !errors.Is(err, bus.ErrUnauthenticated) || !strings.Contains(err.Error(), "allow_unauthenticated") {
			t.Fatalf("%+v: %v", opts, err)
		}
		want := opts.Listen
		if want == "" {
			want = "0.0.0.0:0"
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name the listen address %s", err, want)
		}
	}
	// Loopback stays open.
	for _, l := range []string{"127.0.0.1:0", "127.0.0.2:0", "localhost:0"} {
		start(t, bus.Options{Listen: l, DisableJetStream: true})
	}
}

func TestStatusAndReconnect(t *testing.T) {
	a, err := bus.Start(context.Background(), bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true})
	if err != nil {
		t.Fatal(err)
	}
	logs := &trellistest.SyncBuffer{}
	b := start(t, bus.Options{URL: a.ClientURL(), Logger: newLogger(logs)})
	if b.Status() != nats.CONNECTED || !b.Connected() {
		t.Fatalf("status %v", b.Status())
	}
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for b.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Status() != nats.RECONNECTING {
		t.Fatalf("status after the server went away: %v, want RECONNECTING (no limit on reconnects)", b.Status())
	}
	if !waitFor(logs, "NATS connection lost") {
		t.Fatalf("no loud log line for the lost connection:\n%s", logs)
	}
	b.Close()
	if b.Status() != nats.CLOSED {
		t.Fatalf("status after Close: %v", b.Status())
	}
	if strings.Contains(logs.String(), "closed for good") {
		t.Fatalf("an orderly Close logged as a failure:\n%s", logs)
	}
}

func newLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Debug})
}

// waitFor waits up to 5s for the log to contain text.
func waitFor(logs *trellistest.SyncBuffer, text string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(logs.String(), text) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func TestSubjectExportedBothWaysDoesNotLoop(t *testing.T) {
	b := start(t, bus.Options{Listen: "127.0.0.1:0", DisableJetStream: true,
		Users:  []bus.User{{Name: "alice", Password: "pw"}},
		Export: []string{"orders.>"}, ExportStream: []string{"orders.>"}})
	got := make(chan string, 16)
	sub, _ := b.Conn().Subscribe("orders.>", func(m *nats.Msg) { got <- "host " + m.Subject })
	defer sub.Unsubscribe()
	b.Conn().Flush()
	alice := connect(t, b.ClientURL(), nats.UserInfo("alice", "pw"))
	seen, _ := alice.SubscribeSync("orders.>")
	alice.Flush()
	alice.Publish("orders.created", nil)
	b.Conn().Publish("orders.enriched", nil)
	b.Conn().Flush()
	alice.Flush()
	var host []string
	for len(host) < 2 {
		select {
		case s := <-got:
			host = append(host, s)
		case <-time.After(2 * time.Second):
			t.Fatalf("host got %v", host)
		}
	}
	select {
	case s := <-got:
		t.Fatalf("host got a third message %s: %v", s, host)
	case <-time.After(300 * time.Millisecond):
	}
	var client []string
	for {
		m, err := seen.NextMsg(300 * time.Millisecond)
		if err != nil {
			break
		}
		client = append(client, m.Subject)
	}
	// The client sees its own event once and the host's once: neither
	// comes back through the other export.
	if len(client) != 2 {
		t.Fatalf("client saw %v, want orders.created and orders.enriched once each", client)
	}
}

func TestExportsOfTheHostsOwnSubjectsAreRefused(t *testing.T) {
	for _, subj := range []string{">", "*.created", "$KV.trellis.>", "$JS.API.>", "_INBOX.>"} {
		for _, opts := range []bus.Options{{Export: []string{subj}}, {ExportStream: []string{subj}}} {
			opts.Listen = "127.0.0.1:0"
			opts.Users = []bus.User{{Name: "a", Password: "b"}}
			if b, err := bus.Start(context.Background(), opts); err == nil {
				b.Close()
				t.Fatalf("export %q accepted", subj)
			} else if !strings.Contains(err.Error(), subj) {
				t.Fatalf("error %v does not name %q", err, subj)
			}
		}
	}
}

func TestHostAccountKeepsJetStreamStateAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	opts := bus.Options{Listen: "127.0.0.1:0", StoreDir: dir, Users: []bus.User{{Name: "a", Password: "b"}}}
	ctx := context.Background()
	for i, step := range []func(jetstream.KeyValue) error{
		func(kv jetstream.KeyValue) error { _, err := kv.Put(ctx, "k", []byte("kept")); return err },
		func(kv jetstream.KeyValue) error {
			e, err := kv.Get(ctx, "k")
			if err == nil && string(e.Value()) != "kept" {
				err = errors.New("value " + string(e.Value()))
			}
			return err
		},
	} {
		b, err := bus.Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(b.Conn())
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "trellis"})
		if err == nil {
			err = step(kv)
		}
		b.Close()
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
	}
}
