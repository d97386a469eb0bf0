package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/trellis-mesh/trellis/host"
	"github.com/trellis-mesh/trellis/host/admin"
)

// startAdmin serves h's admin endpoint with opts, unless opts.Listen is
// empty or "off"; it returns a func that stops it (once; later calls do
// nothing), to call before the host closes.
func startAdmin(h *host.Host, opts admin.Options, log hclog.Logger) (func(), error) {
	if opts.Listen == "" || opts.Listen == "off" {
		return func() {}, nil
	}
	opts.Logger = log.Named("admin")
	a, err := admin.New(h, opts)
	if err != nil {
		return nil, err
	}
	if err := a.Start(); err != nil {
		a.Close(context.Background())
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a.Close(ctx)
		})
	}, nil
}

// adminFlags are how ls and top reach a host's admin endpoint.
type adminFlags struct {
	url, token string
	viaNATS    bool
	conn       clientFlags
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("TRELLIS_ADMIN")
	if def == "" {
		def = "http://" + admin.DefaultListen
	}
	fs.StringVar(&a.url, "admin", def, "the host's admin endpoint (default: $TRELLIS_ADMIN, else http://"+admin.DefaultListen+")")
	fs.StringVar(&a.token, "token", os.Getenv("TRELLIS_ADMIN_TOKEN"), "the admin endpoint's bearer token (default: $TRELLIS_ADMIN_TOKEN)")
	fs.BoolVar(&a.viaNATS, "nats", false, "ask every host on the bus, as NATS services ($SRV.INFO and $SRV.STATS), instead of one admin endpoint")
	a.conn.register(fs)
}

// row is one plugin as ls and top print it.
type row struct {
	name, version, role, lang, subjects, pool string
	hosts                                     int
	rate, errRatio, p50, p99                  float64
	total                                     float64
	reload                                    string
	// candidates are a handler's candidate versions, printed under it.
	candidates []row
}

// fetch reads the plugins from the admin endpoint or the bus.
func (a *adminFlags) fetch(ctx context.Context) ([]row, error) {
	if a.viaNATS {
		return a.fetchNATS(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(a.url, "/")+"/api/plugins", nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", req.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", req.URL, err)
	}
	var rows []row
	for _, p := range st.Plugins {
		r := row{name: p.Name, version: p.Version, role: p.Role, lang: p.Language, subjects: strings.Join(p.Subjects, " "),
			pool: fmt.Sprintf("%d/%d", p.Pool.InUse, p.Pool.Size), hosts: 1, rate: p.PerSecond,
			errRatio: p.ErrorRatio, p50: p.P50, p99: p.P99, total: p.Messages, reload: "-"}
		if p.Recording {
			r.role += " (recording)"
		}
		if e := p.LastReload; e != nil {
			r.reload = string(e.Kind) + " " + e.Time.Local().Format("15:04:05")
			if e.Kind == host.EventRefused || e.Kind == host.EventRolledBack {
				r.reload += ": " + e.Detail
			}
		}
		for _, c := range p.Candidates {
			cr := row{name: "  └ candidate", version: c.Version, lang: "-", role: string(c.Mode), pool: fmt.Sprintf("%d/%d", c.InUse, c.PoolSize),
				p50: c.P50, p99: c.P99, total: float64(c.Messages), reload: "-", rate: -1}
			if c.Messages > 0 {
				cr.errRatio = float64(c.Errors) / float64(c.Messages)
			}
			if c.Mode == host.CandidateCanary {
				cr.role += " " + pct(c.Share)
			}
			if ro := p.Rollout; ro != nil && ro.Version == c.Version && ro.State == host.RolloutRunning {
				cr.reload = fmt.Sprintf("rollout step %d/%d", ro.Step, len(ro.Plan.Steps))
				if ro.Decider != "" {
					cr.reload += ", decided by " + ro.Decider
				}
			}
			if s := c.Shadow; s != nil {
				cr.reload = fmt.Sprintf("shadow: %d compared, %d differ", s.Compared, s.Differed)
			}
			r.candidates = append(r.candidates, cr)
		}
		rows = append(rows, r)
	}
	// Plugins not serving yet: being prepared, or refused with no version
	// serving; the reload column says which and why.
	for _, p := range st.NotServing {
		r := row{name: p.Plugin, version: "-", role: "-", lang: "-", subjects: "-", pool: "-", reload: string(p.State)}
		if p.Reason != "" {
			r.reload += ": " + p.Reason
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// fetchNATS asks every host on the bus for its plugins as NATS services:
// the services framework's own protocol, so what any micro service
// answers is listed too. Rates need two readings; ls over NATS prints
// totals and the average time instead of percentiles.
func (a *adminFlags) fetchNATS(ctx context.Context) ([]row, error) {
	nc, code := a.conn.connect("ls", 5*time.Second, io.Discard)
	if nc == nil {
		return nil, fmt.Errorf("cannot connect to NATS (exit %d)", code)
	}
	defer nc.Close()
	infos, err := gather[micro.Info](ctx, nc, "$SRV.INFO")
	if err != nil {
		return nil, err
	}
	stats, err := gather[micro.Stats](ctx, nc, "$SRV.STATS")
	if err != nil {
		return nil, err
	}
	byName := map[string]*row{}
	for _, in := range infos {
		r := byName[in.Name]
		if r == nil {
			r = &row{name: in.Name, version: strings.TrimPrefix(in.Version, "0.0.0+"), role: "service", pool: "-", reload: "-",
				lang: cmp.Or(in.Metadata["trellis.language"], "-")}
			var subjects []string
			for _, e := range in.Endpoints {
				subjects = append(subjects, e.Subject)
			}
			r.subjects = strings.Join(subjects, " ")
			byName[in.Name] = r
		}
		r.hosts++
	}
	errs := map[string]float64{}
	took := map[string]time.Duration{}
	for _, st := range stats {
		r := byName[st.Name]
		if r == nil {
			continue
		}
		for _, e := range st.Endpoints {
			r.total += float64(e.NumRequests)
			errs[st.Name] += float64(e.NumErrors)
			took[st.Name] += e.ProcessingTime
		}
	}
	var rows []row
	for name, r := range byName {
		if r.total > 0 {
			r.errRatio = errs[name] / r.total
			r.p50 = (took[name] / time.Duration(r.total)).Seconds() // the average, shown as p50
		}
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	return rows, nil
}

// gather sends a request to subject and collects the answers that come
// within a second (every service answers, none says it is the last).
func gather[T any](ctx context.Context, nc *nats.Conn, subject string) ([]T, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var out []T
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return out, nil
		}
		var v T
		if json.Unmarshal(m.Data, &v) == nil {
			out = append(out, v)
		}
	}
}

func fmtSeconds(s float64) string {
	switch {
	case s <= 0:
		return "-"
	case s < 1e-3:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1fms", s*1e3)
	}
	return fmt.Sprintf("%.2fs", s)
}

func printRows(w io.Writer, rows []row, viaNATS bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if viaNATS {
		fmt.Fprintln(tw, "NAME\tVERSION\tLANG\tHOSTS\tSUBJECTS\tTOTAL\tERRORS\tAVG")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.0f\t%.1f%%\t%s\n", r.name, r.version, r.lang, r.hosts, r.subjects, r.total, 100*r.errRatio, fmtSeconds(r.p50))
		}
	} else {
		fmt.Fprintln(tw, "NAME\tVERSION\tLANG\tROLE\tSUBJECTS\tPOOL\tRATE/S\tERRORS\tP50\tP99\tTOTAL\tLAST RELOAD")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.1f%%\t%s\t%s\t%.0f\t%s\n", r.name, r.version, r.lang, r.role, r.subjects, r.pool,
				r.rate, 100*r.errRatio, fmtSeconds(r.p50), fmtSeconds(r.p99), r.total, r.reload)
			for _, c := range r.candidates {
				// A candidate's figures are since it was added: no rate.
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\t%s\t-\t%.1f%%\t%s\t%s\t%.0f\t%s\n", c.name, c.version, c.lang, c.role, c.pool,
					100*c.errRatio, fmtSeconds(c.p50), fmtSeconds(c.p99), c.total, c.reload)
			}
		}
	}
	tw.Flush()
}

func cmdLs(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("ls", "Usage: trellis ls [flags]\n\nLists a host's plugins from its admin endpoint: version, role, subjects, pool in use,\nrate, error ratio, p50 and p99 over the last 10s, total messages and the last\nreload. With --nats, lists the plugins of every host on the bus instead.", stderr)
	var af adminFlags
	af.register(fs)
	if _, err := parse(fs, args); err != nil {
		return flagExit(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := af.fetch(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "trellis ls: %v\n", err)
		return 1
	}
	printRows(stdout, rows, af.viaNATS)
	return 0
}

func cmdTop(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("top", "Usage: trellis top [flags]\n\nShows what trellis ls shows, refreshed in place, busiest plugin first, until interrupted.", stderr)
	var af adminFlags
	af.register(fs)
	interval := fs.Duration("interval", 2*time.Second, "time between refreshes")
	count := fs.Int("count", 0, "stop after this many refreshes (0: until interrupted)")
	if _, err := parse(fs, args); err != nil {
		return flagExit(err)
	}
	ctx, stop := signalContext()
	defer stop()
	for n := 0; *count == 0 || n < *count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return 0
			case <-time.After(*interval):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rows, err := af.fetch(rctx)
		cancel()
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear
		fmt.Fprintf(stdout, "trellis top  %s  %s\n\n", af.source(), time.Now().Format("15:04:05"))
		if err != nil {
			fmt.Fprintf(stdout, "%v\n", err)
			continue
		}
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].rate > rows[j].rate })
		printRows(stdout, rows, af.viaNATS)
	}
	return 0
}

func (a *adminFlags) source() string {
	if a.viaNATS {
		return "every host on the bus"
	}
	return a.url
}
