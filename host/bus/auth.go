package bus

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Account names the embedded server uses when authentication is on.
const (
	// HostAccount holds the host's own connection and so every plugin
	// subscription, every reply, the KV bucket and the JetStream API. No
	// client user is put in it unless a nats-server config file does so
	// explicitly (accounts { TRELLIS { users = [...] } }).
	HostAccount = "TRELLIS"
	// ClientAccount holds the users of Options.Users and the users a
	// nats-server config file declares outside any account. It imports
	// Options.Export and Options.ExportStream from HostAccount, and nothing
	// else of it.
	ClientAccount = "CLIENTS"
)

// connTypeInProcess is nats-server's name for a connection made with
// Server.InProcessConn (jwt.ConnectionTypeInProcess). The host's own user
// is limited to it, so its key is useless over TCP even if it leaked.
const connTypeInProcess = "IN_PROCESS"

// User is one client of the embedded server.
type User struct {
	// Name is the user name a password user logs in with. For an nkey user
	// it only names the user in errors.
	Name string
	// Password, for a password user: plain text, or a bcrypt hash (starting
	// "$2a$", "$2b$" or "$2y$", as `nats server passwd` prints) that
	// nats-server checks without ever holding the password.
	Password string
	// NKey, for an nkey user: the user's public key ("U..."). The client
	// proves it holds the seed by signing the server's nonce; nothing
	// secret is stored here.
	NKey string
	// Permissions limit what the user may publish and subscribe to within
	// its account. Empty lists mean no limit in that direction.
	Permissions Permissions
}

// Permissions are NATS subject permissions: a subject is allowed when it
// matches Allow (or Allow is empty) and does not match Deny. Wildcards
// * and > work as in subscriptions.
type Permissions struct {
	PublishAllow, PublishDeny     []string
	SubscribeAllow, SubscribeDeny []string
}

func (p Permissions) server() *server.Permissions {
	if len(p.PublishAllow)+len(p.PublishDeny)+len(p.SubscribeAllow)+len(p.SubscribeDeny) == 0 {
		return nil
	}
	sp := &server.Permissions{}
	if len(p.PublishAllow)+len(p.PublishDeny) > 0 {
		sp.Publish = &server.SubjectPermission{Allow: p.PublishAllow, Deny: p.PublishDeny}
	}
	if len(p.SubscribeAllow)+len(p.SubscribeDeny) > 0 {
		sp.Subscribe = &server.SubjectPermission{Allow: p.SubscribeAllow, Deny: p.SubscribeDeny}
	}
	return sp
}

// TLS is a certificate, its key and a CA bundle, as PEM files.
type TLS struct {
	// Cert and Key are this side's certificate and private key.
	Cert, Key string
	// CA verifies the other side: on the embedded server it makes client
	// certificates required and checked against it; on a client it
	// replaces the system roots for checking the server.
	CA string
}

func (t TLS) empty() bool { return t.Cert == "" && t.Key == "" && t.CA == "" }

// Credentials are how a client connection authenticates: the host's own
// connection to an external NATS (Options.URL) or, in operator mode, to
// its embedded server; and the CLI's client verbs. Set one of CredsFile,
// User, Token or NKeySeedFile; TLS applies with any of them.
type Credentials struct {
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed),
	// as nsc or `nats` tools write them; the only choice in operator mode.
	CredsFile string
	// User and Password log in as a password user.
	User, Password string
	// Token logs in with an authorization token.
	Token string
	// NKeySeedFile is a file holding an nkey user's seed ("SU...").
	NKeySeedFile string
	// TLS is the client's certificate (for servers that verify clients)
	// and the CA that checks the server.
	TLS TLS
}

// natsOptions turns c into nats.go options. It reads no secret file but
// the nkey seed, which nats.go reads itself for a credentials file.
func (c Credentials) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	n := 0
	if c.CredsFile != "" {
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
		n++
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
		n++
	} else if c.Password != "" {
		return nil, errors.New("a password needs a user name")
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
		n++
	}
	if c.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
		n++
	}
	if n > 1 {
		return nil, errors.New("set one of a credentials file, a user, a token or an nkey seed file")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return nil, errors.New("TLS: set both a certificate and a key, or neither")
	}
	if c.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(c.TLS.Cert, c.TLS.Key))
	}
	if c.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(c.TLS.CA))
	}
	return opts, nil
}

// ResolveURL picks the server a client connects to: the -s flag when
// given, else the NATS_URL environment variable (env), else the embedded
// server's default address. It is what the `nats` CLI does.
func ResolveURL(flagURL, env string) string {
	switch {
	case flagURL != "":
		return flagURL
	case env != "":
		return env
	}
	return "nats://" + DefaultListen
}

// Connect connects a client to url with c, as the CLI's client verbs do;
// extra options are applied after c's.
func Connect(url string, c Credentials, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.natsOptions()
	if err != nil {
		return nil, err
	}
	return nats.Connect(url, append(opts, extra...)...)
}

// hostAuth is how the host's own connection authenticates to its embedded
// server, decided by configureAuth.
type hostAuth struct {
	// on reports whether clients must authenticate at all.
	on bool
	// opts authenticate the host's in-process connection.
	opts []nats.Option
}

// configureAuth sets up authentication on sopts, which may already hold
// what a nats-server config file says.
//
// With no user anywhere (Options.Users empty and no authorization or
// accounts users in the file) the server stays open, with one account, as
// in development. With users, it builds two accounts: HostAccount for the
// host's connection, which authenticates as a random nkey user made here,
// held only in memory and usable only in-process; and ClientAccount for
// every user not placed in an account by the file. Every client account
// imports Options.Export as services (a client's publish or request is
// delivered into HostAccount, replies come back) and Options.ExportStream
// as streams (what plugins publish there is delivered to client
// subscribers). Nothing else crosses: a client cannot subscribe to a
// plugin's subject, answer its requests, or reach $KV or $JS of the host.
//
// In operator (JWT) mode accounts and users are the operator's; the host
// connects with Options.Auth.CredsFile and is in whatever account that
// user belongs to.
func configureAuth(sopts *server.Options, opts Options) (hostAuth, error) {
	if len(sopts.TrustedOperators) > 0 || len(sopts.TrustedKeys) > 0 {
		if len(opts.Users) > 0 || len(opts.Export) > 0 || len(opts.ExportStream) > 0 {
			return hostAuth{}, errors.New("the nats-server config uses operator (JWT) mode: users, export and export_stream come from the operator's JWTs, not from the nats block")
		}
		if opts.Auth.CredsFile == "" {
			return hostAuth{}, errors.New(`the nats-server config uses operator (JWT) mode, where the host cannot create its own user: set nats { credentials = "FILE.creds" } to a user of the account plugins should run in`)
		}
		copts, err := opts.Auth.natsOptions()
		if err != nil {
			return hostAuth{}, fmt.Errorf("host credentials: %w", err)
		}
		return hostAuth{on: true, opts: copts}, nil
	}
	if sopts.Authorization != "" {
		return hostAuth{}, errors.New("the nats-server config sets an authorization token: a token gives every client the host's own rights; declare users instead (authorization { users = [...] } or nats { user \"NAME\" { ... } })")
	}
	if sopts.Username != "" {
		// A single user/password cannot sit beside a users list (which the
		// host needs for itself): make it the first user of the list.
		sopts.Users = append([]*server.User{{Username: sopts.Username, Password: sopts.Password}}, sopts.Users...)
		sopts.Username, sopts.Password = "", ""
	}
	if len(sopts.Users)+len(sopts.Nkeys)+len(opts.Users) == 0 {
		if len(opts.Export)+len(opts.ExportStream) > 0 {
			return hostAuth{}, errors.New("export and export_stream need authentication: declare users (nats { user \"NAME\" { ... } }), or drop them on an open bus")
		}
		return hostAuth{}, nil
	}

	for _, subj := range append(append([]string(nil), opts.Export...), opts.ExportStream...) {
		if err := CheckExport(subj); err != nil {
			return hostAuth{}, err
		}
	}
	hostAcc := findAccount(sopts, HostAccount)
	if hostAcc == nil {
		hostAcc = server.NewAccount(HostAccount)
		sopts.Accounts = append(sopts.Accounts, hostAcc)
	}
	clientAcc := findAccount(sopts, ClientAccount)
	if clientAcc == nil {
		clientAcc = server.NewAccount(ClientAccount)
		sopts.Accounts = append(sopts.Accounts, clientAcc)
	}
	for _, u := range opts.Users {
		switch {
		case u.NKey != "" && u.Password != "":
			return hostAuth{}, fmt.Errorf("user %q: set a password or an nkey, not both", u.Name)
		case u.NKey != "":
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				return hostAuth{}, fmt.Errorf("user %q: nkey %q is not a user public key (U...)", u.Name, u.NKey)
			}
			sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: u.NKey, Account: clientAcc, Permissions: u.Permissions.server()})
		case u.Password != "":
			sopts.Users = append(sopts.Users, &server.User{Username: u.Name, Password: u.Password, Account: clientAcc, Permissions: u.Permissions.server()})
		default:
			return hostAuth{}, fmt.Errorf("user %q: set a password or an nkey", u.Name)
		}
	}
	// Users the file left in the global account join the client account:
	// the global account would otherwise be a third place, beside the
	// host's, with nothing imported.
	for _, u := range sopts.Users {
		if u.Account == nil {
			u.Account = clientAcc
		}
	}
	for _, u := range sopts.Nkeys {
		if u.Account == nil {
			u.Account = clientAcc
		}
	}

	var importers []*server.Account
	sys := sopts.SystemAccount
	if sys == "" {
		sys = server.DEFAULT_SYSTEM_ACCOUNT
	}
	for _, a := range sopts.Accounts {
		if a != hostAcc && a.Name != sys {
			importers = append(importers, a)
		}
	}
	for _, subj := range opts.Export {
		if err := hostAcc.AddServiceExport(subj, importers); err != nil {
			return hostAuth{}, fmt.Errorf("export %q: %w", subj, err)
		}
		for _, a := range importers {
			if err := a.AddServiceImport(hostAcc, subj, subj); err != nil {
				return hostAuth{}, fmt.Errorf("export %q to account %s: %w", subj, a.Name, err)
			}
		}
	}
	for _, subj := range opts.ExportStream {
		if err := hostAcc.AddStreamExport(subj, importers); err != nil {
			return hostAuth{}, fmt.Errorf("export_stream %q: %w", subj, err)
		}
		for _, a := range importers {
			if err := a.AddStreamImport(hostAcc, subj, ""); err != nil {
				return hostAuth{}, fmt.Errorf("export_stream %q to account %s: %w", subj, a.Name, err)
			}
		}
	}

	kp, err := nkeys.CreateUser()
	if err != nil {
		return hostAuth{}, fmt.Errorf("host key: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return hostAuth{}, fmt.Errorf("host key: %w", err)
	}
	sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{
		Nkey:                   pub,
		Account:                hostAcc,
		AllowedConnectionTypes: map[string]struct{}{connTypeInProcess: {}},
	})
	return hostAuth{on: true, opts: []nats.Option{nats.Nkey(pub, kp.Sign)}}, nil
}

// CheckExport refuses an export subject that would reach beyond plugin
// subjects: a first token that is a wildcard, starts with "$" ($JS, $KV,
// $SYS...) or is _INBOX would hand clients the host's JetStream API, its
// KV entries or the replies to plugins' requests.
func CheckExport(subject string) error {
	first, _, _ := strings.Cut(subject, ".")
	if first == "*" || first == ">" || strings.HasPrefix(first, "$") || first == "_INBOX" {
		return fmt.Errorf("export %q would give clients the host's own subjects ($JS, $KV, inboxes); export plugin subjects such as \"orders.>\"", subject)
	}
	return nil
}

func findAccount(sopts *server.Options, name string) *server.Account {
	for _, a := range sopts.Accounts {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// loopback reports whether host (a listen host; empty is every interface,
// as nats-server reads it) reaches only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses a server that listens beyond loopback with no
// authentication, unless opts allow it.
func checkExposure(sopts *server.Options, auth hostAuth, opts Options) error {
	if auth.on || opts.AllowUnauthenticated || sopts.DontListen {
		return nil
	}
	host := sopts.Host
	if host == "" {
		host = server.DEFAULT_HOST
	}
	if loopback(host) {
		return nil
	}
	port := sopts.Port
	if port == 0 {
		port = server.DEFAULT_PORT
	}
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	if port == server.RANDOM_PORT {
		addr = net.JoinHostPort(host, "0")
	}
	return fmt.Errorf("%w: embedded NATS would listen on %s with no authentication; declare users (nats { user \"NAME\" { password = \"...\" } }) or set nats { allow_unauthenticated = true } to expose it anyway", ErrUnauthenticated, addr)
}

// ErrUnauthenticated is returned by Start when the embedded server would
// accept clients from other machines without authentication.
var ErrUnauthenticated = errors.New("unauthenticated bus beyond loopback")

// serverTLS sets up TLS on the embedded server's client port.
func serverTLS(sopts *server.Options, t TLS) error {
	if t.empty() {
		return nil
	}
	if t.Cert == "" || t.Key == "" {
		return errors.New("NATS TLS: set both a certificate and a key (a CA alone verifies nothing)")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: t.CA != ""})
	if err != nil {
		return fmt.Errorf("NATS TLS: %w", err)
	}
	sopts.TLSConfig = tc
	sopts.TLS = true
	sopts.TLSVerify = t.CA != ""
	sopts.TLSCert, sopts.TLSKey, sopts.TLSCaCert = t.Cert, t.Key, t.CA
	if sopts.TLSTimeout == 0 {
		sopts.TLSTimeout = 2
	}
	return nil
}
