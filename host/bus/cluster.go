package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Replication limits, as JetStream has them.
const (
	// MaxReplicas is the most copies JetStream keeps of a stream.
	MaxReplicas = 5
	// DefaultClusterReplicas is how many copies of the KV bucket (and of
	// what else the host creates in JetStream) a clustered server asks
	// for when Options.Replicas is zero: three survive the loss of any one
	// member and are what NATS recommends.
	DefaultClusterReplicas = 3
	// DefaultClusterName names the cluster when Cluster.Name is empty.
	DefaultClusterName = "trellis"
)

// Cluster makes the embedded server one member of a NATS cluster: members
// connect to each other with routes, NATS delivers a message published on
// any member to subscribers on every member (a queue group's message to one
// of them), and JetStream, clustered, keeps each stream on Options.Replicas
// members with a Raft group per stream, so the KV bucket survives the loss
// of a member while a majority of its copies remains.
//
// Every member is configured alike but for its own name (Options.Name,
// which must be unique in the cluster and stable across restarts: JetStream
// knows its peers by it) and, on one machine, its addresses.
type Cluster struct {
	// Name is the cluster's name, the same on every member (default
	// DefaultClusterName).
	Name string
	// Listen is HOST:PORT where this member accepts routes from the
	// others. Setting it turns clustering on.
	Listen string
	// Advertise is HOST:PORT the others reach this member at, when Listen
	// is not it (Listen on 0.0.0.0, or behind an address translation).
	Advertise string
	// Routes are the URLs of members to connect to, nats-route://HOST:PORT
	// (or nats://). Listing every member, this one included, is the usual
	// way (a server skips its own route); a member learns of the others
	// from the ones it reaches. A route that does not answer is retried
	// every second, forever.
	Routes []string
	// User with Password (or PasswordFile, read at Start, one line) are
	// the credentials every member requires of incoming routes and
	// presents on its own. Required when Listen is beyond loopback, unless
	// Options.AllowUnauthenticated says otherwise.
	User, Password, PasswordFile string
}

// LeafRemote attaches the embedded server, as a leaf node, to another NATS
// server or cluster (the hub): subjects flow both ways between the local
// account and the hub account the credentials belong to, so plugins on
// this host serve the hub's clients and can reach its services, while
// local traffic stays local.
type LeafRemote struct {
	// URLs are the hub's leaf node addresses (nats-leaf://HOST:7422, or
	// tls:// ...); one is picked, the others are for reconnecting.
	URLs []string
	// CredsFile is a NATS credentials file for the hub (empty: none).
	CredsFile string
	// Account is the local account bound to the hub. Default: the host's
	// account (HostAccount) when authentication is on, so that plugins'
	// subjects are the ones shared; otherwise the server's only account.
	Account string
}

// clustered reports whether sopts (from Options or a nats-server file)
// make the server a cluster member.
func clustered(sopts *server.Options) bool {
	return sopts.Cluster.Port != 0 || len(sopts.Routes) > 0
}

// configureCluster sets the cluster, leaf node and JetStream domain
// options on sopts, which may hold what a nats-server file says, and
// checks Options.Replicas. authOn says whether configureAuth turned
// authentication on.
func configureCluster(sopts *server.Options, opts Options, authOn bool) error {
	c := opts.Cluster
	if c.Listen == "" && (c.Name != "" || c.Advertise != "" || len(c.Routes) > 0 || c.User != "" || c.Password != "" || c.PasswordFile != "") {
		return errors.New("cluster: set listen, the address other members route to")
	}
	if c.Listen != "" {
		if clustered(sopts) {
			return fmt.Errorf("cluster: the nats-server config %s has a cluster of its own; configure it in one place", opts.ConfigFile)
		}
		if err := clusterOptions(sopts, opts); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	for i, r := range opts.LeafRemotes {
		remote, err := leafRemote(r, sopts, authOn)
		if err != nil {
			return fmt.Errorf("leaf node remote %d: %w", i+1, err)
		}
		sopts.LeafNode.Remotes = append(sopts.LeafNode.Remotes, remote)
	}
	if opts.JetStreamDomain != "" {
		if strings.ContainsAny(opts.JetStreamDomain, " .*>") {
			return fmt.Errorf("jetstream domain %q: no spaces, dots or wildcards", opts.JetStreamDomain)
		}
		sopts.JetStreamDomain = opts.JetStreamDomain
	}
	_, err := replicas(opts.Replicas, clustered(sopts))
	return err
}

// replicas checks n (0: the default) and returns what to ask JetStream for.
func replicas(n int, clustered bool) (int, error) {
	switch {
	case n < 0 || n > MaxReplicas:
		return 0, fmt.Errorf("replicas %d: JetStream keeps 1 to %d copies", n, MaxReplicas)
	case n > 0:
		return n, nil
	case clustered:
		return DefaultClusterReplicas, nil
	}
	return 1, nil
}

func clusterOptions(sopts *server.Options, opts Options) error {
	c := opts.Cluster
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return err
	}
	if port == server.RANDOM_PORT {
		return fmt.Errorf("listen %q: the other members need a fixed port", c.Listen)
	}
	sopts.Cluster.Host, sopts.Cluster.Port = host, port
	sopts.Cluster.Name = c.Name
	if sopts.Cluster.Name == "" {
		sopts.Cluster.Name = DefaultClusterName
	}
	if strings.ContainsAny(sopts.Cluster.Name, " \t") {
		return fmt.Errorf("name %q: no spaces", sopts.Cluster.Name)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("advertise %q: want HOST:PORT", c.Advertise)
		}
		sopts.Cluster.Advertise = c.Advertise
	}
	password := c.Password
	if c.PasswordFile != "" {
		if password != "" {
			return errors.New("set a password or a password file, not both")
		}
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("password file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
		if password == "" {
			return fmt.Errorf("password file %s is empty", c.PasswordFile)
		}
	}
	if (c.User == "") != (password == "") {
		return errors.New("set both a user and a password for routes, or neither")
	}
	sopts.Cluster.Username, sopts.Cluster.Password = c.User, password
	if sopts.ReconnectErrorReports == 0 {
		// A member that is down is retried every second, on each of the
		// route's pooled connections: say so once a minute, not four
		// times a second.
		sopts.ReconnectErrorReports = 60
	}
	for _, r := range c.Routes {
		u, err := RouteURL(r)
		if err != nil {
			return err
		}
		if c.User != "" {
			u.User = url.UserPassword(c.User, password)
		}
		sopts.Routes = append(sopts.Routes, u)
	}
	if opts.Name == "" && (opts.ConfigFile == "" || sopts.ServerName == "") {
		// JetStream knows its peers by server name: it must be unique in
		// the cluster and the same after a restart. A StatefulSet's pod
		// name (its hostname) is both.
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("server name: set the nats block's name (the hostname is unknown: %v)", err)
		}
		sopts.ServerName = h
	}
	return nil
}

// RouteURL parses a cluster route, nats-route://HOST:PORT or
// nats://HOST:PORT. Credentials in it are refused: they belong in
// Cluster.User and Cluster.Password, which apply to every route.
func RouteURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", s, err)
	}
	if u.Scheme != "nats-route" && u.Scheme != "nats" {
		return nil, fmt.Errorf("route %q: want nats-route://HOST:PORT", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("route %q: put credentials in the cluster's user and password, not in a route", s)
	}
	if u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("route %q: want nats-route://HOST:PORT", s)
	}
	return u, nil
}

// LeafURL parses a leaf node remote's URL: nats-leaf://, nats://, tls://
// or ws:// (wss://) with a host. Credentials belong in a credentials file.
func LeafURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("leaf node url %q: %w", s, err)
	}
	switch u.Scheme {
	case "nats-leaf", "nats", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("leaf node url %q: want nats-leaf://HOST:PORT (or tls://, ws://, wss://)", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("leaf node url %q: put credentials in a credentials file, not in the URL", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("leaf node url %q: no host", s)
	}
	return u, nil
}

func leafRemote(r LeafRemote, sopts *server.Options, authOn bool) (*server.RemoteLeafOpts, error) {
	if len(r.URLs) == 0 {
		return nil, errors.New("no URL")
	}
	remote := &server.RemoteLeafOpts{Credentials: r.CredsFile, LocalAccount: r.Account}
	for _, s := range r.URLs {
		u, err := LeafURL(s)
		if err != nil {
			return nil, err
		}
		if u.Scheme == "tls" || u.Scheme == "wss" {
			remote.TLS = true
		}
		remote.URLs = append(remote.URLs, u)
	}
	if r.CredsFile != "" {
		if _, err := os.Stat(r.CredsFile); err != nil {
			return nil, fmt.Errorf("credentials file: %w", err)
		}
	}
	operator := len(sopts.TrustedOperators)+len(sopts.TrustedKeys) > 0
	if remote.LocalAccount == "" && authOn && !operator {
		remote.LocalAccount = HostAccount
	}
	if remote.LocalAccount != "" && !operator && remote.LocalAccount != HostAccount && findAccount(sopts, remote.LocalAccount) == nil {
		return nil, fmt.Errorf("account %q is not one of the server's", remote.LocalAccount)
	}
	return remote, nil
}

// checkClusterExposure refuses cluster routes beyond loopback that any
// machine could open with no credentials: a route is a full member, which
// sees every message of every account.
func checkClusterExposure(sopts *server.Options, opts Options) error {
	if opts.Cluster.Listen == "" || opts.AllowUnauthenticated || sopts.Cluster.Username != "" || loopback(sopts.Cluster.Host) {
		return nil
	}
	addr := net.JoinHostPort(sopts.Cluster.Host, fmt.Sprint(sopts.Cluster.Port))
	return fmt.Errorf("%w: cluster routes would listen on %s with no authentication; set the cluster's user and password (or password file), or allow_unauthenticated = true if the network itself keeps others out", ErrUnauthenticated, addr)
}
