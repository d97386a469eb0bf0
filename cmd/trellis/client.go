package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/bus"
)

// clientFlags are how the client verbs reach and log in to a server, with
// the `nats` CLI's names, environment variables and contexts, so that a
// shell set up for `nats` works for trellis as it is. Each setting comes
// from its flag, else its environment variable, else the context (--context,
// else $NATS_CONTEXT, else the one `nats context select` chose), else the
// default.
type clientFlags struct {
	url, context string
	creds        bus.Credentials
}

// clientEnv names the environment variable of each setting, as the nats
// CLI reads them.
var clientEnv = struct{ url, context, creds, user, password, token, nkey, cert, key, ca string }{
	"NATS_URL", "NATS_CONTEXT", "NATS_CREDS", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_NKEY", "NATS_CERT", "NATS_KEY", "NATS_CA",
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	serverUsage := "NATS server URL (default: $NATS_URL, else the context's, else nats://" + bus.DefaultListen + ")"
	fs.StringVar(&c.url, "s", "", serverUsage)
	fs.StringVar(&c.url, "server", "", serverUsage)
	fs.StringVar(&c.context, "context", "", "nats CLI context to take the server and credentials from (default: $NATS_CONTEXT, else the selected one)")
	fs.StringVar(&c.creds.CredsFile, "creds", "", "NATS credentials file (user JWT and seed) ($NATS_CREDS)")
	fs.StringVar(&c.creds.User, "user", "", "user name ($NATS_USER)")
	fs.StringVar(&c.creds.Password, "password", "", "password ($NATS_PASSWORD)")
	if fs.Lookup("token") == nil { // ls and top take --token for their admin endpoint
		fs.StringVar(&c.creds.Token, "token", "", "authorization token ($NATS_TOKEN)")
	}
	fs.StringVar(&c.creds.NKeySeedFile, "nkey", "", "file with an nkey user seed ($NATS_NKEY)")
	fs.StringVar(&c.creds.TLS.Cert, "tlscert", "", "client certificate, PEM ($NATS_CERT)")
	fs.StringVar(&c.creds.TLS.Key, "tlskey", "", "client certificate's private key, PEM ($NATS_KEY)")
	fs.StringVar(&c.creds.TLS.CA, "tlsca", "", "CA that verifies the server, PEM ($NATS_CA)")
}

// natsContext is the part of a nats CLI context file
// (~/.config/nats/context/NAME.json) that says where and who to connect as.
type natsContext struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`
}

// natsConfigDir is where the nats CLI keeps its contexts.
func natsConfigDir() (string, error) {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "nats"), nil
}

// loadContext reads the context named name, or the selected one when name
// is ""; no context selected is no error.
func loadContext(name string) (*natsContext, error) {
	dir, err := natsConfigDir()
	if err != nil {
		return nil, nil
	}
	explicit := name != ""
	if !explicit {
		b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
		if err != nil {
			return nil, nil
		}
		name = strings.TrimSpace(string(b))
		if name == "" {
			return nil, nil
		}
	}
	if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("context %q: not a context name", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, "context", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	var ctx natsContext
	if err := json.Unmarshal(b, &ctx); err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	return &ctx, nil
}

// resolve fills every setting left empty by a flag from the environment,
// then the context, and returns the URL to connect to.
func (c *clientFlags) resolve() (string, error) {
	name := c.context
	if name == "" {
		name = os.Getenv(clientEnv.context)
	}
	nctx, err := loadContext(name)
	if err != nil {
		return "", err
	}
	if nctx == nil {
		nctx = &natsContext{}
	}
	pick := func(v *string, env, fromContext string) {
		if *v == "" {
			*v = os.Getenv(env)
		}
		if *v == "" {
			*v = fromContext
		}
	}
	cr := &c.creds
	// A login given by flag or environment replaces the context's whole,
	// so that a --user is not sent with the context's credentials file.
	if cr.CredsFile == "" && cr.User == "" && cr.Token == "" && cr.NKeySeedFile == "" &&
		os.Getenv(clientEnv.creds)+os.Getenv(clientEnv.user)+os.Getenv(clientEnv.token)+os.Getenv(clientEnv.nkey) == "" {
		cr.CredsFile, cr.User, cr.Password, cr.Token, cr.NKeySeedFile = nctx.Creds, nctx.User, nctx.Password, nctx.Token, nctx.NKey
	} else {
		pick(&cr.CredsFile, clientEnv.creds, "")
		pick(&cr.User, clientEnv.user, "")
		pick(&cr.Password, clientEnv.password, "")
		pick(&cr.Token, clientEnv.token, "")
		pick(&cr.NKeySeedFile, clientEnv.nkey, "")
	}
	pick(&cr.TLS.Cert, clientEnv.cert, nctx.Cert)
	pick(&cr.TLS.Key, clientEnv.key, nctx.Key)
	pick(&cr.TLS.CA, clientEnv.ca, nctx.CA)
	url := c.url
	if url == "" {
		url = os.Getenv(clientEnv.url)
	}
	return bus.ResolveURL(url, nctx.URL), nil
}

func (c *clientFlags) connect(verb string, timeout time.Duration, stderr io.Writer) (*nats.Conn, int) {
	url, err := c.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "trellis %s: %v\n", verb, err)
		return nil, 2
	}
	nc, err := bus.Connect(url, c.creds, nats.Timeout(timeout))
	if err != nil {
		fmt.Fprintf(stderr, "trellis %s: connect %s: %v\n", verb, url, err)
		return nil, 1
	}
	return nc, -1
}

// clientCmd is what req and pub share: flags, the message, a connection.
type clientCmd struct {
	verb    string
	conn    clientFlags
	timeout *time.Duration
	headers []string
	msg     *nats.Msg
	nc      *nats.Conn
}

// setup parses a client verb's arguments and connects; a non-negative exit
// code means the verb ends there with it. more registers the verb's own
// flags.
func (c *clientCmd) setup(synopsis string, args []string, stderr io.Writer, more func(*flag.FlagSet)) int {
	fs := newFlags(c.verb, synopsis, stderr)
	c.conn.register(fs)
	c.timeout = fs.Duration("timeout", 5*time.Second, "how long to wait")
	fs.Func("H", "header NAME:VALUE (repeatable)", func(v string) error {
		if !strings.Contains(v, ":") {
			return errors.New("want NAME:VALUE")
		}
		c.headers = append(c.headers, v)
		return nil
	})
	if more != nil {
		more(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return 2
	}
	if *c.timeout <= 0 {
		fmt.Fprintf(stderr, "trellis %s: --timeout %s: want a positive duration\n", c.verb, *c.timeout)
		return 2
	}
	c.msg = nats.NewMsg(pos[0])
	if len(pos) > 1 {
		c.msg.Data = []byte(pos[1])
	}
	for _, h := range c.headers {
		k, v, _ := strings.Cut(h, ":")
		c.msg.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var code int
	c.nc, code = c.conn.connect(c.verb, *c.timeout, stderr)
	return code
}

func cmdReq(args []string, stdout, stderr io.Writer) int {
	c := &clientCmd{verb: "req"}
	var showHeaders bool
	synopsis := "Usage: trellis req [flags] SUBJECT [DATA]\n\nSends a request and prints the reply; an error reply prints \"error CODE: DESCRIPTION\" on stderr\nand exits 1. --headers prints the reply's status line and headers first, as NATS\nframes them (NATS/1.0 [CODE DESCRIPTION], then NAME: VALUE lines, then a blank line)."
	if code := c.setup(synopsis, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&showHeaders, "headers", false, "print the reply's status and headers before its data")
		fs.BoolVar(&showHeaders, "i", false, "short for --headers")
	}); code >= 0 {
		return code
	}
	defer c.nc.Close()
	m, err := c.nc.RequestMsg(c.msg, *c.timeout)
	if err != nil {
		fmt.Fprintf(stderr, "trellis req %s: %v\n", c.msg.Subject, err)
		return 1
	}
	code := m.Header.Get(abi.HeaderErrorCode)
	if showHeaders {
		printHeaders(stdout, m)
	}
	if code != "" {
		fmt.Fprintf(stderr, "error %s: %s\n", code, m.Header.Get(abi.HeaderError))
	}
	stdout.Write(m.Data)
	if len(m.Data) > 0 && m.Data[len(m.Data)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if code != "" {
		return 1
	}
	return 0
}

// The headers nats.go makes of the status line of a message the server
// itself answers with (503 no responders, 408 request timeout), which it
// does not export.
const (
	natsStatusHeader      = "Status"
	natsDescriptionHeader = "Description"
)

// printHeaders writes a reply's status and headers as NATS frames them: a
// status line with the code and description of an error reply (a Trellis
// error reply's, or the server's own, as for no responders), then each
// header, sorted, then a blank line.
func printHeaders(w io.Writer, m *nats.Msg) {
	status := "NATS/1.0"
	if code := m.Header.Get(abi.HeaderErrorCode); code != "" {
		status += " " + code + " " + m.Header.Get(abi.HeaderError)
	} else if code := m.Header.Get(natsStatusHeader); code != "" {
		status += " " + code + " " + m.Header.Get(natsDescriptionHeader)
	}
	fmt.Fprintln(w, strings.TrimSpace(status))
	names := make([]string, 0, len(m.Header))
	for k := range m.Header {
		if k != natsStatusHeader && k != natsDescriptionHeader {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range m.Header[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
}

func cmdPub(args []string, stdout, stderr io.Writer) int {
	c := &clientCmd{verb: "pub"}
	if code := c.setup("Usage: trellis pub [flags] SUBJECT [DATA]\n\nPublishes one message.", args, stderr, nil); code >= 0 {
		return code
	}
	defer c.nc.Close()
	if err := c.nc.PublishMsg(c.msg); err != nil {
		fmt.Fprintf(stderr, "trellis pub: %v\n", err)
		return 1
	}
	if err := c.nc.FlushTimeout(*c.timeout); err != nil {
		fmt.Fprintf(stderr, "trellis pub: %v\n", err)
		return 1
	}
	return 0
}

func cmdSub(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sub", "Usage: trellis sub [flags] SUBJECT\n\nPrints each message on SUBJECT (NATS wildcards * and > allowed) as\n\"SUBJECT: DATA\", until interrupted, -count messages or -timeout.", stderr)
	var conn clientFlags
	conn.register(fs)
	count := fs.Int("count", 0, "stop after this many messages (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: no limit)")
	showHeaders := fs.Bool("headers", false, "print each message's headers (NAME: VALUE lines) before it")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	if *count < 0 || *timeout < 0 {
		fmt.Fprintln(stderr, "trellis sub: --count and --timeout must not be negative")
		return 2
	}
	nc, code := conn.connect("sub", 5*time.Second, stderr)
	if nc == nil {
		return code
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(pos[0], msgs)
	if err != nil {
		fmt.Fprintf(stderr, "trellis sub %s: %v\n", pos[0], err)
		return 1
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		fmt.Fprintf(stderr, "trellis sub %s: %v\n", pos[0], err)
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case m := <-msgs:
			if *showHeaders && len(m.Header) > 0 {
				printHeaders(stdout, m)
			}
			fmt.Fprintf(stdout, "%s: %s\n", m.Subject, m.Data)
		case <-ctx.Done():
			if *count > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				fmt.Fprintf(stderr, "trellis sub: %d of %d messages before the timeout\n", n, *count)
				return 1
			}
			return 0
		}
	}
	return 0
}
