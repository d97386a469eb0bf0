package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/trellis-mesh/trellis/host"
)

// runFlags are the flags dev passes on to run when it serves a config file.
var runFlags = map[string]bool{"nats-listen": true, "nats-url": true, "nats-config": true, "log-level": true, "config": true, "admin-listen": true, "nats-name": true, "cluster-listen": true}

// devConfig serves a config file for `trellis dev --config FILE`, as
// `trellis run --config FILE` does with the NATS and log flags given; done is
// false when no --config was given. dev's own flags (--strict, --data-dir,
// --timeout, --pool-size) and a DIR are refused with it: the config file
// says all of that.
func devConfig(fs *flag.FlagSet, pos []string, stdout, stderr io.Writer) (code int, done bool) {
	file := fs.Lookup("config").Value.String()
	if file == "" {
		return 0, false
	}
	var args, refused []string
	fs.Visit(func(f *flag.Flag) {
		if runFlags[f.Name] {
			args = append(args, "--"+f.Name, f.Value.String())
		} else {
			refused = append(refused, "--"+f.Name)
		}
	})
	if len(pos) > 0 || len(refused) > 0 {
		given := append(refused, pos...)
		fmt.Fprintf(stderr, "trellis dev: with --config the config file says what to serve and how: no DIR, --strict, --data-dir, --timeout or --pool-size (given: %s)\n", strings.Join(given, " "))
		return 2, true
	}
	return cmdRun(args, stdout, stderr), true
}

// checkDevDir fails, before anything starts, for a dev DIR that is not a
// directory: a missing one would otherwise be found only after NATS started,
// and watched from its parent.
func checkDevDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// exit is os.Exit, replaced in tests.
var exit = os.Exit

// forceOnSecondSignal makes a second SIGINT or SIGTERM, during a graceful
// shutdown, end the process at once (status 130), after logging what was in
// flight when the shutdown began: the calls it is waiting for, by plugin.
// It must be called before h.Close, which takes the plugins away from
// h.Plugins. The returned stop ends the watch.
func forceOnSecondSignal(h *host.Host, log hclog.Logger) (stop func()) {
	var busy []string
	for _, p := range h.Plugins() {
		if p.InUse > 0 {
			busy = append(busy, fmt.Sprintf("%s (%d)", p.Name, p.InUse))
		}
	}
	inFlight := "none"
	if len(busy) > 0 {
		inFlight = strings.Join(busy, ", ")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-sig:
			log.Warn("second interrupt: exiting now, without waiting for the calls in flight", "calls_in_flight", inFlight)
			exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		<-ended
	}
}
