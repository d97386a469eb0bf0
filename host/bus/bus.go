// Package bus gives the host its NATS connection: either to a nats-server
// embedded in this process (the default; one binary is a complete system) or
// to an existing NATS deployment.
//
// Scaling out is NATS's job: an embedded server can be given a nats-server
// configuration file with cluster or leaf node settings, or the host can
// connect to an external cluster with URL. Nothing here invents a protocol.
//
// Security is NATS's too. With no user declared, the embedded server is
// open, as `trellis dev` wants, and Start refuses to listen beyond loopback
// that way unless AllowUnauthenticated says so. Once any user is declared
// (Options.Users, or users in a nats-server config file), the host's own
// connection moves to an account of its own (HostAccount) that clients
// reach only through the subjects Options.Export and Options.ExportStream
// name; see configureAuth.
package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Defaults for Options fields left zero.
const (
	DefaultListen     = "127.0.0.1:4222"
	DefaultMaxPayload = 8 << 20
	readyTimeout      = 10 * time.Second
)

// Options configure the bus. The zero value embeds a server on
// DefaultListen with JetStream in a temporary directory.
type Options struct {
	// URL, if set, connects to an existing NATS server or cluster (comma-
	// separated URLs) instead of embedding one.
	URL string
	// Listen is the embedded server's client address, HOST:PORT. Port 0 picks
	// a free port; ClientURL says which.
	Listen string
	// StoreDir holds JetStream's files. Empty means a temporary directory
	// removed on Close.
	StoreDir string
	// DisableJetStream turns JetStream off in the embedded server.
	DisableJetStream bool
	// MaxPayload is the largest message the embedded server accepts, in bytes
	// (default DefaultMaxPayload; NATS's own default is 1 MiB).
	MaxPayload int32
	// ConfigFile is a nats-server configuration file for the embedded server,
	// for cluster routes, leaf nodes, accounts or TLS. Listen, StoreDir and
	// MaxPayload, when set, override what it says. Its users and accounts
	// are kept; Start adds the host's own user, Users and the exports to
	// them (see configureAuth). Token authorization is refused: a token
	// would give every client the host's rights.
	ConfigFile string
	// Name names the connection and the embedded server.
	Name string
	// Logger receives the embedded server's log and the host connection's
	// disconnects, reconnects and close (default: discard).
	Logger hclog.Logger

	// Users are the clients the embedded server accepts, each with a
	// password (plain or bcrypt) or an nkey, and permissions. Declaring any
	// user here or in ConfigFile turns authentication on: clients without
	// credentials are refused and the host's traffic moves to HostAccount.
	// Not allowed in operator (JWT) mode.
	Users []User
	// Export lists subjects in the host's account that clients may publish
	// and send requests to (plugin subjects), such as "orders.>" or
	// "greet". Each is a service export imported by every client account:
	// the message is delivered to the plugin and its reply, if any, comes
	// back to the client. Only with authentication on.
	Export []string
	// ExportStream lists subjects published in the host's account (by
	// plugins) that clients may subscribe to, such as "notifications.>".
	// Each is a stream export imported by every client account. Only with
	// authentication on.
	ExportStream []string
	// AllowUnauthenticated lets the embedded server listen beyond loopback
	// (any host but 127.0.0.0/8, ::1 or localhost) with no authentication.
	// Without it Start fails with ErrUnauthenticated in that case.
	AllowUnauthenticated bool
	// TLS secures the embedded server's client port with Cert and Key;
	// with CA, clients must present a certificate signed by it. The host's
	// in-process connection does not use TLS. With URL it is the host's
	// client TLS instead, unless Auth.TLS is set.
	TLS TLS
	// Auth is how the host's own connection authenticates when it connects
	// to URL (credentials file, user and password, token or nkey seed file,
	// and client TLS), and to the embedded server in operator (JWT) mode,
	// where only Auth.CredsFile applies because the host cannot make a
	// user of its own. Otherwise the host makes its own credential.
	Auth Credentials

	// Cluster, with Listen set, makes the embedded server a member of a
	// NATS cluster (see Cluster). Name must then be unique in the cluster
	// and stable; left empty, it is the machine's hostname.
	Cluster Cluster
	// LeafRemotes attach the embedded server as a leaf node to other NATS
	// servers (see LeafRemote).
	LeafRemotes []LeafRemote
	// JetStreamDomain names the embedded server's JetStream domain, which
	// a leaf node needs to keep its streams apart from the hub's.
	JetStreamDomain string
	// Replicas is how many copies JetStream keeps of the streams the host
	// creates (the KV bucket): 1 to MaxReplicas. Zero means
	// DefaultClusterReplicas for a clustered embedded server and 1
	// otherwise, an external NATS included (set it for a cluster there).
	// A stream with more replicas than the cluster has members cannot be
	// created: plugins' KV calls fail, saying so, until enough join.
	Replicas int

	// Conn, if set, is the caller's own connection, used as it is: the bus
	// starts no server, does not reconnect it or close it (the caller
	// does, after the host's Close). Every other field must be zero but
	// Logger. For a program that already holds a NATS connection.
	Conn *nats.Conn
	// Server, if set, is the caller's own running nats-server; the bus
	// connects to it in-process and leaves it running on Close. Only Auth
	// (its CredsFile, user and password, or token), Name and Logger apply.
	// For a program that embeds nats-server itself.
	Server *server.Server
}

// Bus is a connected bus. Close releases it.
type Bus struct {
	srv     *server.Server
	nc      *nats.Conn
	tempDir string
	// borrowed: the connection, or the server, is the caller's; Close
	// leaves it open.
	borrowedConn, borrowedServer bool
	log                          hclog.Logger
	closing                      atomic.Bool
	auth                         bool
	replicas                     int
}

// connOptions are the options every host connection has: reconnect
// forever (a host without its bus serves nothing, so it never gives up),
// and say loudly when the connection drops, returns or closes.
func (b *Bus) connOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if b.closing.Load() {
				return
			}
			b.log.Error("NATS connection lost; reconnecting, plugins get no messages meanwhile", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Warn("NATS connection restored", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if b.closing.Load() {
				return
			}
			b.log.Error("NATS connection closed for good; the host can no longer receive or send", "error", nc.LastError())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Error("NATS error", "subject", subj, "error", err)
		}),
	}
}

// Start connects to NATS: it embeds and starts a server unless opts.URL is
// set, waits until the server is ready, and connects to it in-process (no
// TCP between the host and its own server).
func Start(ctx context.Context, opts Options) (*Bus, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	b := &Bus{log: log}
	name := opts.Name
	if name == "" {
		name = "trellis"
	}
	if opts.Conn != nil || opts.Server != nil {
		return borrow(b, opts, name)
	}
	if opts.URL != "" {
		if len(opts.Users)+len(opts.Export)+len(opts.ExportStream) > 0 {
			return nil, fmt.Errorf("NATS at %s: users and exports configure the embedded server; an external server's are its own", opts.URL)
		}
		if opts.Cluster.Listen != "" || len(opts.LeafRemotes) > 0 || opts.JetStreamDomain != "" {
			return nil, fmt.Errorf("NATS at %s: cluster, leaf nodes and the JetStream domain configure the embedded server; an external server's are its own", opts.URL)
		}
		r, err := replicas(opts.Replicas, false)
		if err != nil {
			return nil, fmt.Errorf("NATS at %s: %w", opts.URL, err)
		}
		b.replicas = r
		creds := opts.Auth
		if creds.TLS.empty() {
			creds.TLS = opts.TLS
		}
		copts, err := creds.natsOptions()
		if err != nil {
			return nil, fmt.Errorf("NATS at %s: %w", opts.URL, err)
		}
		copts = append(copts, b.connOptions(name)...)
		nc, err := nats.Connect(opts.URL, append(copts, nats.Timeout(5*time.Second))...)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", opts.URL, err)
		}
		b.nc = nc
		log.Info("connected to external NATS", "url", nc.ConnectedUrlRedacted())
		return b, nil
	}

	sopts, auth, err := serverOptions(opts, name)
	if err != nil {
		return nil, err
	}
	// serverOptions checked it already.
	b.replicas, _ = replicas(opts.Replicas, clustered(sopts))
	sopts.JetStream = !opts.DisableJetStream
	if sopts.JetStream {
		dir := opts.StoreDir
		if dir == "" && sopts.StoreDir == "" {
			tmp, err := mkTemp()
			if err != nil {
				return nil, err
			}
			b.tempDir, dir = tmp, tmp
		}
		if dir != "" {
			sopts.StoreDir = dir
		}
	}
	b.auth = auth.on
	if err := portFree(sopts); err != nil {
		b.removeTemp()
		return nil, err
	}

	srv, err := server.NewServer(sopts)
	if err != nil {
		b.removeTemp()
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	srv.SetLoggerV2(&serverLog{log: log.Named("nats")}, false, false, false)
	go srv.Start()
	wait := readyTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		b.removeTemp()
		return nil, fmt.Errorf("embedded NATS on %s did not become ready in %s (is the port in use? try --nats-listen 127.0.0.1:0)", clientAddr(sopts), wait)
	}
	b.srv = srv
	if auth.on && sopts.JetStream && len(sopts.TrustedOperators)+len(sopts.TrustedKeys) == 0 {
		// Accounts made here (or in a file without "jetstream: enabled")
		// have no JetStream; the host's needs it for KV and durable handlers.
		if acc, err := srv.LookupAccount(HostAccount); err == nil && !acc.JetStreamEnabled() {
			if err := acc.EnableJetStream(nil, nil); err != nil {
				b.Close()
				return nil, fmt.Errorf("embedded NATS: JetStream for account %s: %w", HostAccount, err)
			}
		}
	}
	copts := append(auth.opts, b.connOptions(name)...)
	nc, err := nats.Connect("", append(copts, nats.InProcessServer(srv))...)
	if err != nil {
		b.Close()
		if auth.on {
			return nil, fmt.Errorf("connect to embedded NATS with the host's credentials: %w", err)
		}
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	b.nc = nc
	log.Info("embedded NATS ready", "client_url", srv.ClientURL(), "jetstream", sopts.JetStream,
		"store_dir", sopts.StoreDir, "auth", auth.on, "tls", sopts.TLSConfig != nil)
	return b, nil
}

// serverOptions turns opts into the embedded server's options, with the
// host's own user and the accounts configured, and refuses what Start would
// refuse before it starts anything: a bad config file or listen address,
// bad TLS or authentication settings, an unauthenticated bus beyond
// loopback. It leaves JetStream's store directory to Start.
func serverOptions(opts Options, name string) (*server.Options, hostAuth, error) {
	sopts := &server.Options{}
	if opts.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(opts.ConfigFile)
		if err != nil {
			return nil, hostAuth{}, fmt.Errorf("nats config %s: %w", opts.ConfigFile, err)
		}
		sopts = fo
	} else {
		sopts.ServerName = name
	}
	listen := opts.Listen
	if listen == "" && opts.ConfigFile == "" {
		listen = DefaultListen
	}
	if listen != "" {
		host, port, err := splitListen(listen)
		if err != nil {
			return nil, hostAuth{}, err
		}
		sopts.Host, sopts.Port = host, port
	}
	if opts.MaxPayload > 0 {
		sopts.MaxPayload = opts.MaxPayload
	} else if sopts.MaxPayload == 0 {
		sopts.MaxPayload = DefaultMaxPayload
	}
	sopts.NoSigs = true // the host owns signal handling
	if err := serverTLS(sopts, opts.TLS); err != nil {
		return nil, hostAuth{}, err
	}
	auth, err := configureAuth(sopts, opts)
	if err != nil {
		return nil, hostAuth{}, fmt.Errorf("embedded NATS: %w", err)
	}
	if err := checkExposure(sopts, auth, opts); err != nil {
		return nil, hostAuth{}, err
	}
	if err := configureCluster(sopts, opts, auth.on); err != nil {
		return nil, hostAuth{}, fmt.Errorf("embedded NATS: %w", err)
	}
	if err := checkClusterExposure(sopts, opts); err != nil {
		return nil, hostAuth{}, err
	}
	return sopts, auth, nil
}

// clientAddr is the embedded server's client address as HOST:PORT.
func clientAddr(sopts *server.Options) string {
	port := sopts.Port
	if port == server.RANDOM_PORT {
		port = 0
	} else if port == 0 {
		port = server.DEFAULT_PORT
	}
	host := sopts.Host
	if host == "" {
		host = server.DEFAULT_HOST
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// portFree fails at once, naming the address, when the client port is
// taken: nats-server would only log it, and Start would wait for a server
// that never becomes ready.
func portFree(sopts *server.Options) error {
	if sopts.DontListen || sopts.Port == server.RANDOM_PORT {
		return nil
	}
	addr := clientAddr(sopts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("embedded NATS cannot listen on %s: %w (another server there? try --nats-listen 127.0.0.1:0)", addr, err)
	}
	return ln.Close()
}

// Check reports what Start would refuse in opts without starting or
// connecting to anything: for an embedded server, its config file, listen
// address, TLS and authentication settings, and an unauthenticated bus
// beyond loopback. With URL there is nothing to check before connecting.
func Check(opts Options) error {
	if opts.URL != "" {
		return nil
	}
	name := opts.Name
	if name == "" {
		name = "trellis"
	}
	_, _, err := serverOptions(opts, name)
	return err
}

func splitListen(s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", s, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("listen address %q: bad port", s)
	}
	if port == 0 {
		port = server.RANDOM_PORT // 0 means 4222 to nats-server
	}
	return host, port, nil
}

// Conn returns the host's connection. It stays valid until Close.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Status is the host connection's state (nats.CONNECTED, RECONNECTING,
// CLOSED...), for readiness checks. It takes no lock of ours.
func (b *Bus) Status() nats.Status { return b.nc.Status() }

// Connected reports whether the host's connection is up right now; while
// it is not, plugins receive nothing and their publishes are buffered.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// Authenticated reports whether the embedded server requires clients to
// authenticate (always false with URL: that server's settings are its own).
func (b *Bus) Authenticated() bool { return b.auth }

// Replicas is how many copies JetStream should keep of each stream the
// host creates: Options.Replicas, or its default (see there).
func (b *Bus) Replicas() int {
	if b.replicas == 0 {
		return 1
	}
	return b.replicas
}

// Embedded reports whether the bus runs a server in this process.
func (b *Bus) Embedded() bool { return b.srv != nil }

// borrow makes a bus on the caller's connection or server.
func borrow(b *Bus, opts Options, name string) (*Bus, error) {
	rest := opts
	rest.Conn, rest.Server, rest.Logger, rest.Name, rest.Auth = nil, nil, nil, "", Credentials{}
	if !reflect.DeepEqual(rest, Options{}) || opts.Conn != nil && opts.Server != nil {
		return nil, errors.New("NATS: a caller's connection or server is used as it is; set no other bus option")
	}
	if opts.Conn != nil {
		if opts.Auth != (Credentials{}) {
			return nil, errors.New("NATS: a caller's connection is already authenticated; set no Auth")
		}
		if opts.Conn.IsClosed() {
			return nil, errors.New("NATS: the caller's connection is closed")
		}
		b.nc, b.borrowedConn = opts.Conn, true
		b.log.Info("using the caller's NATS connection", "url", opts.Conn.ConnectedUrlRedacted())
		return b, nil
	}
	copts, err := opts.Auth.natsOptions()
	if err != nil {
		return nil, fmt.Errorf("NATS: %w", err)
	}
	copts = append(copts, b.connOptions(name)...)
	nc, err := nats.Connect("", append(copts, nats.InProcessServer(opts.Server))...)
	if err != nil {
		return nil, fmt.Errorf("connect to the caller's NATS server: %w", err)
	}
	b.nc, b.srv, b.borrowedServer = nc, opts.Server, true
	b.log.Info("connected to the caller's NATS server", "client_url", opts.Server.ClientURL())
	return b, nil
}

// Server returns the embedded server, or nil when connected to an external one.
func (b *Bus) Server() *server.Server { return b.srv }

// ClientURL is the URL other NATS clients use to reach this bus.
func (b *Bus) ClientURL() string {
	if b.srv != nil {
		return b.srv.ClientURL()
	}
	return b.nc.ConnectedUrlRedacted()
}

// Close flushes and closes the connection, then shuts the embedded server
// down and waits for it. It is safe to call more than once.
func (b *Bus) Close() error {
	b.closing.Store(true)
	var err error
	if b.nc != nil && !b.nc.IsClosed() {
		if b.borrowedConn {
			return b.nc.FlushTimeout(2 * time.Second)
		}
		if ferr := b.nc.FlushTimeout(2 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = ferr
		}
		b.nc.Close()
	}
	if b.srv != nil && !b.borrowedServer {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	b.removeTemp()
	return err
}

// serverLog sends nats-server's log to hclog.
type serverLog struct{ log hclog.Logger }

func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  { l.log.Trace(fmt.Sprintf(format, v...)) }
