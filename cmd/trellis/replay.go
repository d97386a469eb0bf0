package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
)

const replaySynopsis = `Usage: trellis replay [flags] SUBJECT --to PLUGIN[@VERSION] [--module FILE.wasm]

Runs messages PLUGIN recorded on SUBJECT (wildcards allowed; '>' for all) against
a version, in the order they were recorded, and compares each answer with the
one the stable version sent. The version is a candidate of PLUGIN (@VERSION; the
only candidate when PLUGIN has one), or the module --module names, loaded for
the replay with the stable's settings. Either way it runs on its own, as
harmless as a shadow: its replies are compared, never sent, and its publishes,
requests and KV writes are recorded, not made.

  trellis replay orders.created --since 1h --to orders-enrich@0a1b2c3d4e5f
  trellis replay 'orders.>' --to orders-enrich --module ./enrich-v3.wasm --rate 50 --mask meta.request_id

PLUGIN records with a record block in its config, or after trellis record PLUGIN --on.
Prints a summary and the differences. Exit status: 0 when every answer was the
same, 1 when some differed or the replay failed, 2 for a usage error.`

const recordSynopsis = `Usage: trellis record [flags] PLUGIN [--on | --off]

Turns the recording of PLUGIN's traffic on or off at run time, through the
host's deploy API, and prints the recording: its subjects, stream, limits and
counts. Turned on without a record block in the config, it records all of
PLUGIN's subjects, kept 1h and 64MiB at most. trellis replay runs what it holds.`

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	var d deployCmd
	d.stdout, d.stderr = stdout, stderr
	fs := newFlags("replay", replaySynopsis, stderr)
	d.af.register(fs)
	var to, module, mask string
	var since time.Duration
	var rate float64
	var limit, diffs int
	fs.StringVar(&to, "to", "", "PLUGIN[@VERSION]: the plugin whose recording runs, and the candidate it runs against")
	fs.StringVar(&module, "module", "", "FILE.wasm: run against this module instead of a candidate")
	fs.DurationVar(&since, "since", 0, fmt.Sprintf("replay what was recorded in the last DURATION (default: all the recording holds; at most %s)", host.MaxRecordAge))
	fs.Float64Var(&rate, "rate", 0, fmt.Sprintf("messages a second (default: as fast as the version answers; at most %d)", host.MaxReplayRate))
	fs.IntVar(&limit, "limit", host.DefaultReplayLimit, fmt.Sprintf("messages replayed at most (up to %d)", host.MaxReplayLimit))
	fs.StringVar(&mask, "mask", "", "JSON fields left out of the comparison, as dotted paths: meta.request_id,time")
	fs.IntVar(&diffs, "diffs", host.DefaultShadowDiffs, fmt.Sprintf("differences printed at most (up to %d)", host.MaxShadowDiffs))
	fs.DurationVar(&d.timeout, "timeout", admin.ReplayTimeout+time.Minute, "how long the request to the host may take")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 || to == "" {
		fs.Usage()
		return 2
	}
	plugin, version, _ := strings.Cut(to, "@")
	if plugin == "" || (version != "" && module != "") {
		fmt.Fprintln(stderr, "trellis replay: --to PLUGIN@VERSION or --to PLUGIN --module FILE, not both")
		return 2
	}
	d.pluginName = plugin
	req := admin.ReplayRequest{Version: version, Subject: pos[0], Rate: rate, Limit: limit, Diffs: diffs}
	if since != 0 {
		req.Since = since.String()
	}
	if mask != "" {
		req.IgnoreFields = strings.Split(mask, ",")
	}
	if module != "" {
		if req.Wasm, err = readModule(module); err != nil {
			fmt.Fprintf(stderr, "trellis replay: %v\n", err)
			return 1
		}
	}
	ctx, stop := signalContext()
	defer stop()
	var rep host.ReplayReport
	if err := d.do(ctx, "POST", "/replay", req, &rep); err != nil {
		fmt.Fprintf(stderr, "trellis replay: %v\n", err)
		return 1
	}
	printReplay(stdout, rep)
	if rep.Different > 0 {
		return 1
	}
	return 0
}

// printReplay prints a replay's summary, the side effects it kept from
// happening and its differences.
func printReplay(w io.Writer, r host.ReplayReport) {
	fmt.Fprintf(w, "replayed %d messages of %s against %s in %.2fs: %d same, %d different, %d errors (p50 %s, p99 %s)\n",
		r.Replayed, r.Plugin, r.Version, r.Seconds, r.Same, r.Different, r.Errors, fmtSeconds(r.P50), fmtSeconds(r.P99))
	if r.NotCompared > 0 {
		fmt.Fprintf(w, "  %d not compared: their recorded answer went out unseen\n", r.NotCompared)
	}
	if r.Stopped != "" {
		fmt.Fprintf(w, "  stopped early: %s\n", r.Stopped)
	}
	var effects []string
	for _, e := range r.Effects {
		effects = append(effects, fmt.Sprintf("%s %s ×%d", e.Kind, e.Target, e.Count))
	}
	if len(effects) > 0 {
		fmt.Fprintf(w, "  side effects, not made: %s\n", strings.Join(effects, ", "))
	}
	for _, df := range r.Diffs {
		fmt.Fprintf(w, "  %s %q\n    - recorded  %s\n    + replayed  %s\n", df.Subject, df.Request, answerText(df.StableStatus, df.Stable),
			answerText(df.CandidateStatus, df.Candidate))
	}
}

func cmdRecord(args []string, stdout, stderr io.Writer) int {
	var d deployCmd
	d.stdout, d.stderr = stdout, stderr
	fs := newFlags("record", recordSynopsis, stderr)
	d.af.register(fs)
	var on, off bool
	fs.BoolVar(&on, "on", false, "start recording")
	fs.BoolVar(&off, "off", false, "stop recording")
	fs.DurationVar(&d.timeout, "timeout", 30*time.Second, "how long the request to the host may take")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 || (on && off) {
		fs.Usage()
		return 2
	}
	d.pluginName = pos[0]
	ctx, stop := signalContext()
	defer stop()
	var st host.RecordStatus
	if on || off {
		err = d.do(ctx, "POST", "/record", map[string]bool{"on": on}, &st)
	} else {
		err = d.do(ctx, "GET", "/record", nil, &st)
	}
	if err != nil {
		fmt.Fprintf(stderr, "trellis record: %v\n", err)
		return 1
	}
	state := "off"
	if st.On {
		state = "on"
	}
	fmt.Fprintf(stdout, "%s: recording %s, subjects %s, stream %s (max age %s, max %d bytes)\n",
		st.Plugin, state, strings.Join(st.Subjects, " "), st.Stream, st.MaxAge, st.MaxBytes)
	fmt.Fprintf(stdout, "  %d recorded, dropped %d (queue full), %d (too big), %d (failed); the stream holds %d messages, %d bytes\n",
		st.Recorded, st.Dropped["queue_full"], st.Dropped["too_big"], st.Dropped["failed"], st.Messages, st.Bytes)
	return 0
}
