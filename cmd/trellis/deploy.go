package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
)

const deploySynopsis = `Usage: trellis deploy [flags] PLUGIN [FILE.wasm]

Adds FILE.wasm as a candidate version of PLUGIN on a host, through its admin
endpoint's deploy API (trellis dev serves it; trellis run with admin { deploy = true }):

  trellis deploy greet ./greet-v2.wasm --shadow
      v2 gets a copy of live traffic; its replies are compared with the stable
      version's, never sent; its publishes, requests and KV writes are recorded,
      not made
  trellis deploy greet ./greet-v2.wasm --canary 5%,25%,100% --max-error-ratio 1% --step 2m
      v2 answers 5%, then 25%, then all of the traffic, each step for 2m at least;
      the host rolls it back at once if its error ratio is more than 1 point above
      the stable's, or its p99 more than --max-p99-ratio times the stable's, in the
      same window; after the last step it becomes the stable version
  trellis deploy greet                       the candidates, the rollout, the shadow's diffs
  trellis deploy greet --abort               roll the running rollout back
  trellis deploy greet --promote VERSION     make a candidate the stable version now
  trellis deploy greet --remove VERSION      remove a candidate

With --wait, a canary's progress is followed until the host decides: the exit
code is 0 when it was promoted, 1 when it was rolled back.`

// deployCmd is trellis deploy's flags.
type deployCmd struct {
	af                                          adminFlags
	shadow, allowPublish, allowRequest, allowKV bool
	sample                                      string
	maxRate, diffs, minMessages                 int
	ignore, config                              []string
	canary, maxErrors                           string
	step, latencyFloor, interval, pollEvery     time.Duration
	maxP99                                      float64
	wait, abort                                 bool
	reason, promote, remove                     string
	stdout, stderr                              io.Writer
	timeout                                     time.Duration
	pluginName                                  string
}

func cmdDeploy(args []string, stdout, stderr io.Writer) int {
	d := &deployCmd{stdout: stdout, stderr: stderr}
	fs := newFlags("deploy", deploySynopsis, stderr)
	d.af.register(fs)
	fs.BoolVar(&d.shadow, "shadow", false, "make the candidate a shadow")
	fs.StringVar(&d.sample, "sample", "100%", "shadow: the share of messages copied")
	fs.IntVar(&d.maxRate, "max-rate", host.DefaultShadowRate, fmt.Sprintf("shadow: copies a second at most (up to %d)", host.MaxShadowRate))
	fs.IntVar(&d.diffs, "diffs", host.DefaultShadowDiffs, fmt.Sprintf("shadow: recent differences kept (up to %d)", host.MaxShadowDiffs))
	fs.Func("ignore-field", "shadow: a JSON field left out of the comparison, as a dotted path (repeatable)", func(v string) error {
		d.ignore = append(d.ignore, v)
		return nil
	})
	fs.BoolVar(&d.allowPublish, "allow-publish", false, "shadow: let its publishes happen")
	fs.BoolVar(&d.allowRequest, "allow-request", false, "shadow: let its requests happen")
	fs.BoolVar(&d.allowKV, "allow-kv-write", false, "shadow: let its KV writes happen")
	fs.Func("config", "KEY=VALUE of the candidate's config, replacing the stable's (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		d.config = append(d.config, v)
		return nil
	})
	fs.StringVar(&d.canary, "canary", "", "roll the candidate out in these steps, shares of the traffic: 5%,25%,100%")
	fs.DurationVar(&d.step, "step", host.DefaultStepDuration, "canary: each step's duration at least")
	fs.StringVar(&d.maxErrors, "max-error-ratio", "1%", "canary: how much higher its error ratio may be than the stable's")
	fs.Float64Var(&d.maxP99, "max-p99-ratio", host.DefaultMaxLatencyRatio, "canary: how many times the stable's p99 its p99 may be")
	fs.DurationVar(&d.latencyFloor, "latency-floor", host.DefaultLatencyFloor, "canary: a p99 difference under this is never a breach")
	fs.IntVar(&d.minMessages, "min-messages", host.DefaultMinMessages, "canary: messages each version needs in a window to be judged")
	fs.DurationVar(&d.interval, "interval", 0, "canary: how often the host compares the versions (default: a tenth of --step, 10ms to 5s)")
	fs.BoolVar(&d.wait, "wait", false, "canary: follow the rollout until the host promotes or rolls it back")
	fs.DurationVar(&d.pollEvery, "poll", time.Second, "--wait: time between two looks at the rollout")
	fs.BoolVar(&d.abort, "abort", false, "roll the running rollout back")
	fs.StringVar(&d.reason, "reason", "", "--abort: why, for the log and the event")
	fs.StringVar(&d.promote, "promote", "", "make candidate VERSION the stable version")
	fs.StringVar(&d.remove, "remove", "", "remove candidate VERSION")
	fs.DurationVar(&d.timeout, "timeout", 2*time.Minute, "how long one request to the host may take")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return 2
	}
	d.pluginName = pos[0]
	actions := 0
	for _, on := range []bool{len(pos) == 2, d.abort, d.promote != "", d.remove != ""} {
		if on {
			actions++
		}
	}
	if actions > 1 {
		fmt.Fprintln(stderr, "trellis deploy: give one of FILE.wasm, --abort, --promote or --remove")
		return 2
	}
	if d.shadow && d.canary != "" {
		fmt.Fprintln(stderr, "trellis deploy: --shadow and --canary exclude each other: a candidate is one or the other")
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	switch {
	case len(pos) == 2:
		return d.add(ctx, pos[1])
	case d.abort:
		return d.post(ctx, "POST", "/abort", map[string]string{"reason": d.reason})
	case d.promote != "":
		return d.post(ctx, "POST", "/"+url.PathEscape(d.promote)+"/promote", nil)
	case d.remove != "":
		return d.post(ctx, "DELETE", "/"+url.PathEscape(d.remove), nil)
	}
	var st admin.DeployStatus
	if err := d.do(ctx, "GET", "", nil, &st); err != nil {
		fmt.Fprintf(stderr, "trellis deploy: %v\n", err)
		return 1
	}
	printDeploy(stdout, st)
	return 0
}

// add sends the module with the options the flags give.
func (d *deployCmd) add(ctx context.Context, file string) int {
	wasm, err := readModule(file)
	if err != nil {
		fmt.Fprintf(d.stderr, "trellis deploy: %v\n", err)
		return 1
	}
	req := admin.DeployRequest{Wasm: wasm, Shadow: d.shadow}
	if len(d.config) > 0 {
		req.Config = map[string]string{}
		for _, kv := range d.config {
			k, v, _ := strings.Cut(kv, "=")
			req.Config[k] = v
		}
	}
	if d.shadow {
		rate, err := host.ParsePercent(d.sample)
		if err != nil {
			fmt.Fprintf(d.stderr, "trellis deploy: --sample %v\n", err)
			return 2
		}
		req.ShadowOptions = host.ShadowOptions{SampleRate: rate, MaxPerSecond: d.maxRate, Diffs: d.diffs, IgnoreFields: d.ignore,
			AllowPublish: d.allowPublish, AllowRequest: d.allowRequest, AllowKVWrite: d.allowKV}
	}
	if d.canary != "" {
		steps, err := host.ParseShares(d.canary)
		if err != nil {
			fmt.Fprintf(d.stderr, "trellis deploy: --canary %v\n", err)
			return 2
		}
		maxErr, err := host.ParsePercent(d.maxErrors)
		if err != nil {
			fmt.Fprintf(d.stderr, "trellis deploy: --max-error-ratio %v\n", err)
			return 2
		}
		req.Rollout = &host.Rollout{Steps: steps, StepDuration: d.step, MaxErrorRatio: maxErr, MaxLatencyRatio: d.maxP99,
			LatencyFloor: d.latencyFloor, MinMessages: d.minMessages, Interval: d.interval}
	}
	var st admin.DeployStatus
	if err := d.do(ctx, "POST", "", req, &st); err != nil {
		fmt.Fprintf(d.stderr, "trellis deploy: %v\n", err)
		return 1
	}
	mode := "an idle candidate"
	switch {
	case d.shadow:
		mode = "a shadow"
	case d.canary != "":
		mode = "a canary"
	}
	fmt.Fprintf(d.stdout, "%s@%s is %s of %s@%s\n", st.Plugin, st.Version, mode, st.Plugin, st.Stable)
	if d.canary == "" || !d.wait {
		return 0
	}
	return d.follow(ctx, st.Version)
}

// follow prints the rollout of version at each change until it ends.
func (d *deployCmd) follow(ctx context.Context, version string) int {
	last := ""
	for {
		var st admin.DeployStatus
		if err := d.do(ctx, "GET", "", nil, &st); err != nil {
			fmt.Fprintf(d.stderr, "trellis deploy: %v\n", err)
			return 1
		}
		ro := st.Rollout
		if ro == nil || ro.Version != version {
			fmt.Fprintf(d.stderr, "trellis deploy: the rollout of %s is gone\n", version)
			return 1
		}
		line := rolloutLine(ro)
		if line != last {
			fmt.Fprintln(d.stdout, line)
			last = line
		}
		switch ro.State {
		case host.RolloutPromoted:
			return 0
		case host.RolloutRolledBack, host.RolloutStopped:
			return 1
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(d.stderr, "trellis deploy: stopped following; the host carries on with the rollout")
			return 1
		case <-time.After(d.pollEvery):
		}
	}
}

// rolloutLine says where a rollout is in one line.
func rolloutLine(ro *host.RolloutStatus) string {
	switch ro.State {
	case host.RolloutRunning:
		s := fmt.Sprintf("rollout %s: step %d of %d, %s of the traffic", ro.Version, ro.Step, len(ro.Plan.Steps), pct(ro.Share))
		if ro.Reason != "" {
			s += " (" + ro.Reason + ")"
		}
		return s
	case host.RolloutPromoted:
		return fmt.Sprintf("rollout %s: promoted, it is the stable version (%s)", ro.Version, ro.Reason)
	}
	return fmt.Sprintf("rollout %s: %s at step %d: %s", ro.Version, strings.ReplaceAll(string(ro.State), "_", " "), ro.Step, ro.Reason)
}

func pct(x float64) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", 100*x), "0"), ".0") + "%"
}

func (d *deployCmd) post(ctx context.Context, method, path string, body any) int {
	var st admin.DeployStatus
	if err := d.do(ctx, method, path, body, &st); err != nil {
		fmt.Fprintf(d.stderr, "trellis deploy: %v\n", err)
		return 1
	}
	printDeploy(d.stdout, st)
	return 0
}

// do sends one request to the deploy API and decodes its answer into out.
func (d *deployCmd) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := strings.TrimSuffix(d.af.url, "/") + "/api/deploy/" + url.PathEscape(d.pluginName) + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if d.af.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.af.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return fmt.Errorf("%s: %s: is the deploy API on? (trellis dev serves it; a config needs admin { deploy = true })", u, resp.Status)
		}
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// printDeploy prints a plugin's versions, its rollout and its shadows' reports.
func printDeploy(w io.Writer, st admin.DeployStatus) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tTRACK\tSHARE\tMESSAGES\tERRORS\tP50\tP99\tPOOL")
	fmt.Fprintf(tw, "%s\tstable\t\t\t\t\t\t\n", st.Stable)
	for _, c := range st.Candidates {
		ratio := 0.0
		if c.Messages > 0 {
			ratio = float64(c.Errors) / float64(c.Messages)
		}
		share := "-"
		if c.Mode == host.CandidateCanary {
			share = pct(c.Share)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f%%\t%s\t%s\t%d/%d\n", c.Version, c.Mode, share, c.Messages, 100*ratio,
			fmtSeconds(c.P50), fmtSeconds(c.P99), c.InUse, c.PoolSize)
	}
	tw.Flush()
	if ro := st.Rollout; ro != nil {
		fmt.Fprintln(w, rolloutLine(ro))
		if ro.State == host.RolloutRunning {
			fmt.Fprintf(w, "  this step: canary %d messages, %.2f%% errors, p99 %s; stable %d messages, %.2f%% errors, p99 %s\n",
				ro.Canary.Messages, 100*ro.Canary.ErrorRatio, fmtSeconds(ro.Canary.P99),
				ro.StableFigures.Messages, 100*ro.StableFigures.ErrorRatio, fmtSeconds(ro.StableFigures.P99))
		}
	}
	for _, c := range st.Candidates {
		r := c.Shadow
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "shadow %s: %d copied, %d skipped; %d compared: %d matched, %d differed (%d where it failed and the stable did not)\n",
			c.Version, r.Copied, r.Skipped, r.Compared, r.Matched, r.Differed, r.CandidateErrors)
		var effects []string
		for _, e := range r.Effects {
			made := "not made"
			if e.Performed {
				made = "made"
			}
			effects = append(effects, fmt.Sprintf("%s %s ×%d (%s)", e.Kind, e.Target, e.Count, made))
		}
		if len(effects) > 0 {
			fmt.Fprintf(w, "  side effects: %s\n", strings.Join(effects, ", "))
		}
		for _, df := range r.Diffs {
			fmt.Fprintf(w, "  %s %q\n    - stable    %s\n    + candidate %s\n", df.Subject, df.Request, answerText(df.StableStatus, df.Stable),
				answerText(df.CandidateStatus, df.Candidate))
		}
	}
}

func answerText(status int, body string) string {
	if status != 0 {
		return fmt.Sprintf("error %d: %s", status, body)
	}
	return fmt.Sprintf("%q", body)
}

// readModule reads a module to deploy, refusing one that cannot fit in a
// deploy request (admin.MaxDeployBody, base64 making it a third larger).
func readModule(file string) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	if limit := int64(admin.MaxDeployBody) / 4 * 3; fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than a deploy request carries (%d, admin.MaxDeployBody in base64)", file, fi.Size(), limit)
	}
	return os.ReadFile(file)
}
