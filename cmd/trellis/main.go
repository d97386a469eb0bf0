// Command trellis runs WebAssembly plugins on a NATS event bus.
//
//	trellis dev DIR               serve every plugin under DIR, no config needed
//	trellis run --config FILE     serve what an HCL config file says
//	trellis build DIR -o FILE     build a plugin source directory into a .wasm
//	trellis new --lang L DIR      write a new plugin that builds and runs as is
//	trellis keygen                write an Ed25519 key pair for signing plugins
//	trellis sign FILE --key KEY   sign a module (a trellis.signature section)
//	trellis req SUBJECT [DATA]    send a request and print the reply
//	trellis pub SUBJECT [DATA]    publish a message
//	trellis sub SUBJECT           print the messages on a subject
//	trellis ls                    list a host's plugins with their figures
//	trellis top                   the same, refreshed in place
//	trellis deploy PLUGIN FILE    shadow a new version, or roll it out as a canary
//	trellis record PLUGIN --on    record a plugin's traffic for replay
//	trellis replay SUBJECT --to P run recorded traffic against a version, with a diff of replies
//	trellis version               print the versions of trellis, the ABI, wazero and nats-server
//	trellis completion SHELL      print a shell completion script
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
	"github.com/trellis-mesh/trellis/host/bus"
	"github.com/trellis-mesh/trellis/host/config"
	"github.com/trellis-mesh/trellis/host/dev"
	"github.com/trellis-mesh/trellis/host/dev/build"
	"github.com/trellis-mesh/trellis/host/dev/scaffold"
	"github.com/trellis-mesh/trellis/host/tracing"
)

const usage = `trellis runs WebAssembly plugins on a NATS event bus.

Usage:
  trellis dev [flags] DIR            serve every plugin under DIR (no config needed)
  trellis run --config FILE [flags]  serve the plugins an HCL config file lists
  trellis build DIR -o FILE.wasm     build a plugin source directory
  trellis new --lang LANG DIR        write a new plugin (go, rust, c or as)
  trellis keygen [-o FILE]           write an Ed25519 key pair for signing plugins
  trellis sign FILE.wasm --key KEY   sign a module
  trellis req [flags] SUBJECT [DATA] send a request, print the reply
  trellis pub [flags] SUBJECT [DATA] publish a message
  trellis sub [flags] SUBJECT        print the messages on a subject (wildcards allowed)
  trellis ls [flags]                 list a host's plugins: version, subjects, pool, rate, errors, p50/p99
  trellis top [flags]                the same, refreshed in place
  trellis deploy PLUGIN FILE.wasm    shadow or canary a new version (--shadow, --canary 5%,25%,100%)
  trellis record PLUGIN --on|--off   record a plugin's traffic for replay, or stop
  trellis replay SUBJECT --to PLUGIN[@VERSION] [--module FILE.wasm]
                                     run recorded messages against a version, diff the replies
  trellis version                    print the versions of trellis, the ABI, wazero and nats-server
  trellis completion bash|zsh|fish   print a shell completion script

Run "trellis help VERB" for a verb's flags. req, pub and sub find the server and log in
as the nats CLI does: -s/--server, $NATS_URL, --context or the selected nats context.
dev and run trace with OpenTelemetry when $OTEL_EXPORTER_OTLP_ENDPOINT (with the other
OTEL_* variables) or a config's tracing block names an OTLP receiver.
`

func main() {
	applyGCPolicy(os.Getenv)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		return cmdHelp(args[1:], stdout, stderr)
	case "-v", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	}
	verb, ok := verbs()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "trellis: unknown verb %q\n\n%s", args[0], usage)
		return 2
	}
	return verb(args[1:], stdout, stderr)
}

// verbs are the CLI's verbs by name.
func verbs() map[string]func([]string, io.Writer, io.Writer) int {
	return map[string]func([]string, io.Writer, io.Writer) int{
		"dev": cmdDev, "run": cmdRun, "build": cmdBuild, "new": cmdNew, "keygen": cmdKeygen, "sign": cmdSign, "req": cmdReq, "pub": cmdPub, "sub": cmdSub, "ls": cmdLs, "top": cmdTop, "deploy": cmdDeploy,
		"record": cmdRecord, "replay": cmdReplay, "version": cmdVersion, "completion": cmdCompletion,
	}
}

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// busFlags are the NATS flags dev and run share.
type busFlags struct {
	listen, url, natsConfig, name, clusterListen string
}

func (b *busFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.listen, "nats-listen", "", "embedded NATS client address HOST:PORT; port 0 picks a free one (default "+bus.DefaultListen+")")
	fs.StringVar(&b.url, "nats-url", "", "connect to this NATS instead of embedding one (nats://host:4222)")
	fs.StringVar(&b.natsConfig, "nats-config", "", "nats-server config file for the embedded server (cluster, leaf nodes, TLS, authorization, accounts)")
	fs.StringVar(&b.name, "nats-name", "", "the embedded server's name, unique in a cluster (default: the config's, else the hostname when clustered)")
	fs.StringVar(&b.clusterListen, "cluster-listen", "", "override the cluster block's listen address HOST:PORT (several members on one machine)")
}

func (b *busFlags) apply(o *bus.Options) error {
	if b.url != "" && b.listen != "" {
		return errors.New("--nats-url and --nats-listen exclude each other")
	}
	if b.url != "" {
		o.URL, o.Listen = b.url, ""
	}
	if b.listen != "" {
		o.Listen = b.listen
	}
	if b.natsConfig != "" {
		o.ConfigFile = b.natsConfig
	}
	if b.name != "" {
		o.Name = b.name
	}
	if b.clusterListen != "" {
		if o.Cluster.Listen == "" {
			return errors.New("--cluster-listen: the config has no cluster block to listen for")
		}
		o.Cluster.Listen = b.clusterListen
	}
	return nil
}

func newLogger(level, format string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "trellis",
		Level:      hclog.LevelFromString(level),
		Output:     w,
		JSONFormat: format == "json",
		Color:      hclog.AutoColor,
	})
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// startHost applies the NATS flags and starts the host; on failure it
// returns nil and the exit code.
func startHost(ctx context.Context, verb string, bf *busFlags, opts host.Options, stderr io.Writer) (*host.Host, int) {
	if err := bf.apply(&opts.Bus); err != nil {
		fmt.Fprintf(stderr, "trellis %s: %v\n", verb, err)
		return nil, 2
	}
	h, err := host.New(ctx, opts)
	if err != nil {
		opts.Logger.Error("start", "error", err)
		return nil, 1
	}
	return h, 0
}

func shutdown(h *host.Host, log hclog.Logger) int {
	defer forceOnSecondSignal(h, log)()
	log.Info("shutting down: finishing in-flight calls (interrupt again to exit at once)")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		log.Error("shutdown", "error", err)
		return 1
	}
	return 0
}

func cmdDev(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("dev", "Usage: trellis dev [flags] DIR\n       trellis dev --config FILE [flags]\n\nFinds .wasm files and plugin sources (Go, Rust, C, AssemblyScript, WAT) under DIR, builds the sources,\nand serves them all on an embedded NATS server. No config file is needed. Sources whose inputs\nare unchanged since their last build are not built again. DIR/policies.txt puts policies in\nfront of handlers (\"greet: auth, ratelimit\"; \"*: sizelimit\" for every handler); a module that\nexports trellis_policy and no trellis_handle, or that policies.txt names, is loaded as a policy. A subdirectory with its own\ntrellis.hcl is left out: serve it with --config.", stderr)
	var bf busFlags
	bf.register(fs)
	dataDir := fs.String("data-dir", ".trellis", "directory for built plugins, the compilation cache and JetStream")
	logLevel := levelFlag(fs, "info", "log level")
	strict := fs.Bool("strict", false, "grant plugins nothing beyond replying, as in production")
	timeout := fs.Duration("timeout", 0, "deadline per call (default 5s)")
	poolSize := fs.Int("pool-size", 0, "instances per plugin (default: 2 per CPU, at least 4)")
	fs.String("config", "", "serve this HCL config file instead of a DIR, as trellis run --config does")
	adminListen := fs.String("admin-listen", admin.DefaultListen, "admin endpoint (metrics, dashboard, probes) HOST:PORT; \"off\" for none")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if code, done := devConfig(fs, pos, stdout, stderr); done {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	if err := checkDevDir(pos[0]); err != nil {
		fmt.Fprintf(stderr, "trellis dev: %v\n", err)
		return 2
	}
	log := newLogger(*logLevel, "text", stderr)
	tp, code := startTracing("dev", tracing.Config{}, log, stderr)
	if tp == nil {
		return code
	}
	defer stopTracing(tp, log)
	ctx, stop := signalContext()
	defer stop()
	h, code := startHost(ctx, "dev", &bf, host.Options{DataDir: *dataDir, Logger: log, HoldTraffic: true,
		TracerProvider: tp.TracerProvider()}, stderr)
	if h == nil {
		return code
	}
	// dev is open on loopback: the deploy API (trellis deploy) comes with it.
	stopAdmin, err := startAdmin(h, admin.Options{Listen: *adminListen, Deploy: true}, log)
	if err != nil {
		log.Error("admin endpoint", "error", err)
		h.Close(context.Background())
		return 1
	}
	defer stopAdmin()
	d := dev.New(h, pos[0], dev.Options{
		BuildDir: filepath.Join(*dataDir, "build"),
		Strict:   *strict,
		Spec:     host.Spec{Timeout: *timeout, PoolSize: *poolSize},
		Logger:   log,
	})
	err = d.Run(ctx, func(res dev.Result) {
		h.MarkReady()
		log.Info("serving; watching for changes", "dir", pos[0], "plugins", strings.Join(res.Loaded, ","),
			"failed", len(res.Failed), "nats", h.ClientURL())
	})
	if err != nil {
		log.Error("dev", "error", err)
		stopAdmin()
		h.Close(context.Background())
		return 1
	}
	stopAdmin()
	return shutdown(h, log)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "Usage: trellis run --config FILE [flags]\n\nServes the plugins an HCL config file lists. A config with any error is\nrefused whole, with file:line:col for each problem.", stderr)
	file := fs.String("config", "trellis.hcl", "HCL config file")
	var bf busFlags
	bf.register(fs)
	logLevel := levelFlag(fs, "", "override the config's log_level")
	check := fs.Bool("check", false, "validate the config and exit: every plugin file is compiled and checked against the ABI, without starting a bus")
	checkBuild := fs.Bool("check-build", false, "with --check, also build plugin sources (in a temporary directory) and check the modules they make")
	httpListen := fs.String("http-listen", "", "override the http block's listen address (port 0 picks a free one)")
	dataDir := fs.String("data-dir", "", "override data_dir: the compilation cache and JetStream's files (one per cluster member)")
	adminListen := fs.String("admin-listen", "", "serve the admin endpoint (metrics, dashboard, probes) on HOST:PORT, overriding the admin block's listen; \"off\" for none")
	if _, err := parse(fs, args); err != nil {
		return flagExit(err)
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintf(stderr, "trellis run: config refused:\n%v\n", err)
		return 2
	}
	if *check {
		var opts config.CheckOptions
		if *checkBuild {
			dir, err := os.MkdirTemp("", "trellis-check-")
			if err != nil {
				fmt.Fprintf(stderr, "trellis run: %v\n", err)
				return 1
			}
			defer os.RemoveAll(dir)
			opts.BuildDir = dir
		}
		if err := config.Check(context.Background(), cfg, opts); err != nil {
			fmt.Fprintf(stderr, "trellis run: config refused:\n%v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "%s: ok, %d plugins\n", *file, len(cfg.Plugins))
		return 0
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	tp, tcode := startTracing("run", cfg.Tracing, log, stderr)
	if tp == nil {
		return tcode
	}
	defer stopTracing(tp, log)
	opts := host.Options{DataDir: cfg.DataDir, Logger: log, MaxInFlight: cfg.MaxInFlight, Bus: cfg.NATS, HTTP: cfg.HTTP,
		ExclusiveSubjects: true, TrustedKeys: cfg.TrustedKeys, RequireSigned: cfg.RequireSigned, HoldTraffic: true,
		Rollouts: cfg.Rollouts, RolloutLease: cfg.RolloutLease}
	opts.TracerProvider = tp.TracerProvider()
	if *httpListen != "" {
		opts.HTTP.Listen = *httpListen
	}
	if *dataDir != "" {
		// The host's options only: plugin paths stay what the file says.
		opts.DataDir = *dataDir
	}
	ctx, stop := signalContext()
	defer stop()
	h, code := startHost(ctx, "run", &bf, opts, stderr)
	if h == nil {
		return code
	}
	adminOpts := cfg.Admin
	if *adminListen != "" {
		adminOpts.Listen = *adminListen
	}
	stopAdmin, err := startAdmin(h, adminOpts, log)
	if err != nil {
		log.Error("admin endpoint", "error", err)
		h.Close(context.Background())
		return 1
	}
	defer stopAdmin()
	// Every plugin must load at startup; later changes that fail leave the
	// running version serving.
	loop := config.NewLoop(h, *file, 0, log)
	first := loop.Apply(ctx, cfg)
	if first.Err != nil {
		// The loop logged every reason, each naming its plugin or route.
		log.Error("the config did not start; nothing is served", "config", *file)
		h.Close(context.Background())
		return 1
	}
	h.MarkReady()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			loop.Trigger()
		}
	}()
	log.Info("serving; watching the config and its plugins (SIGHUP reloads)", "config", *file,
		"plugins", len(cfg.Plugins), "nats", h.ClientURL(), "http", h.HTTPAddr())
	if err := loop.Run(ctx, cfg, nil); err != nil {
		log.Error("config watch", "error", err)
	}
	stopAdmin()
	return shutdown(h, log)
}

func cmdBuild(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("build", "Usage: trellis build DIR -o FILE.wasm\n\nBuilds a plugin source directory (Go, Rust, C, AssemblyScript, or a .wat file) into a module,\nwith the language's own toolchain.", stderr)
	out := fs.String("o", "", "output .wasm file (default: DIR's name + .wasm)")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	if *out == "" {
		abs, _ := filepath.Abs(pos[0])
		*out = strings.TrimSuffix(filepath.Base(abs), ".wat") + ".wasm"
	}
	start := time.Now()
	if err := build.Build(context.Background(), pos[0], *out); err != nil {
		fmt.Fprintln(stderr, "trellis build:", err)
		return 1
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(stdout, "built %s (%d bytes) in %s\n", *out, st.Size(), time.Since(start).Round(time.Millisecond))
	return 0
}

func cmdNew(args []string, stdout, stderr io.Writer) int {
	langs := make([]string, len(scaffold.Langs))
	for i, l := range scaffold.Langs {
		langs[i] = string(l)
	}
	fs := newFlags("new", "Usage: trellis new --lang LANG DIR\n\nWrites a minimal plugin in DIR that builds and runs as is: it subscribes to a\nsubject named after DIR and answers \"Hello from NAME: <payload>\".", stderr)
	lang := fs.String("lang", "go", "language: "+strings.Join(langs, ", "))
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	abs, err := filepath.Abs(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, "trellis new:", err)
		return 1
	}
	name := filepath.Base(abs)
	if err := scaffold.Write(pos[0], *lang, name); err != nil {
		fmt.Fprintln(stderr, "trellis new:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s plugin %q in %s\nrun it: trellis dev %s   then: trellis req %s hi\n", *lang, name, pos[0], pos[0], name)
	return 0
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
