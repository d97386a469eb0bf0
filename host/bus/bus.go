// Package bus gives the host its NATS connection: either to a nats-server
// embedded in this process (the default; one binary is a complete system) or
// to an existing NATS deployment.
//
// Scaling out is NATS's job: an embedded server can be given a nats-server
// configuration file with cluster or leaf node settings, or the host can
// connect to an external cluster with URL. Nothing here invents a protocol.
package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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
	// MaxPayload, when set, override what it says.
	ConfigFile string
	// Name names the connection and the embedded server.
	Name string
	// Logger receives the embedded server's log (default: discard).
	Logger hclog.Logger
}

// Bus is a connected bus. Close releases it.
type Bus struct {
	srv     *server.Server
	nc      *nats.Conn
	tempDir string
	log     hclog.Logger
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
	if opts.URL != "" {
		nc, err := nats.Connect(opts.URL, nats.Name(name), nats.MaxReconnects(-1),
			nats.Timeout(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", opts.URL, err)
		}
		b.nc = nc
		log.Info("connected to external NATS", "url", nc.ConnectedUrlRedacted())
		return b, nil
	}

	sopts := &server.Options{}
	if opts.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(opts.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("nats config %s: %w", opts.ConfigFile, err)
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
			return nil, err
		}
		sopts.Host, sopts.Port = host, port
	}
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
	if opts.MaxPayload > 0 {
		sopts.MaxPayload = opts.MaxPayload
	} else if sopts.MaxPayload == 0 {
		sopts.MaxPayload = DefaultMaxPayload
	}
	sopts.NoSigs = true // the host owns signal handling

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
		return nil, fmt.Errorf("embedded NATS on %s did not become ready in %s (is the port in use? try --nats-listen 127.0.0.1:0)", listen, wait)
	}
	b.srv = srv
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	b.nc = nc
	log.Info("embedded NATS ready", "client_url", srv.ClientURL(), "jetstream", sopts.JetStream, "store_dir", sopts.StoreDir)
	return b, nil
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

// Embedded reports whether the bus runs a server in this process.
func (b *Bus) Embedded() bool { return b.srv != nil }

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
	var err error
	if b.nc != nil && !b.nc.IsClosed() {
		if ferr := b.nc.FlushTimeout(2 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = ferr
		}
		b.nc.Close()
	}
	if b.srv != nil {
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
