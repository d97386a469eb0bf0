package admin_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trellis-mesh/trellis/host/admin"
)

// One headless chromium serves every dashboard test of the binary: it
// takes a second or two to start.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    string
}

// browserContext returns a new tab of the shared browser and what closes
// it (also at the test's end), or skips the
// test when chromium is not installed (fails, with
// TRELLIS_REQUIRE_TOOLCHAINS=1).
func browserContext(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	browser.once.Do(func() {
		path, err := exec.LookPath("chromium")
		if err != nil {
			browser.err = "chromium is not installed (apt-get install chromium)"
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path))
		if os.Geteuid() == 0 {
			opts = append(opts, chromedp.NoSandbox)
		}
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelBrowser := chromedp.NewContext(actx)
		if err := chromedp.Do(bctx); err != nil {
			cancelBrowser()
			cancelAlloc()
			browser.err = "chromium does not start: " + err.Error()
			return
		}
		browser.ctx = bctx
		browser.cancel = func() { cancelBrowser(); cancelAlloc() }
	})
	if browser.err != "" {
		if os.Getenv("TRELLIS_REQUIRE_TOOLCHAINS") == "1" {
			t.Fatal(browser.err)
		}
		t.Skip(browser.err)
	}
	tab, cancel := chromedp.NewContext(browser.ctx)
	t.Cleanup(cancel)
	return tab, cancel
}

func closeBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
}

// TestDashboardShowsLiveTraffic opens the dashboard in headless chromium:
// it loads with no console error or exception, lists the host's plugins,
// and its figures move when traffic flows, without a reload.
func TestDashboardShowsLiveTraffic(t *testing.T) {
	h := meshHost(t)
	_, base := startAdmin(t, h, admin.Options{})
	tab, closeTab := browserContext(t)

	// Every console error or warning, uncaught exception and browser log
	// entry (a failed load, a refused script) of the page.
	messages := chromedp.Console(tab)
	var problems []string
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				problems = append(problems, string(m.Type)+": "+m.String())
			}
		}
	}()

	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`#plugins tr[data-plugin="conformance"]`),
	); err != nil {
		t.Fatal(err)
	}
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#plugins tr[data-plugin]")].map(tr => tr.dataset.plugin)`))
	if err != nil {
		t.Fatal(err)
	}
	rate, err := chromedp.Run(ctx, chromedp.Text(`#plugins tr[data-plugin="conformance"] td.rate`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "conformance,sink,testpolicy" {
		t.Errorf("plugins shown: %v", names)
	}
	if rate != "0.00" {
		t.Errorf("conformance's rate before any traffic: %q", rate)
	}

	// Traffic: the numbers on the page must move without a reload.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc := h.Client()
		for {
			select {
			case <-stop:
				return
			default:
			}
			nc.Request("conf.publish", []byte("x"), 5*time.Second)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()

	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
			const r = document.querySelector('#plugins tr[data-plugin="conformance"] td.rate');
			const e = document.querySelector('#graph g.edge[data-from="handler:conformance"] text.edge-rate');
			return r && parseFloat(r.textContent) > 0 && e && parseFloat(e.dataset.rate) > 0;
		})()`, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("the page's figures did not move with traffic: %v", err)
	}
	total, err := chromedp.Run(ctx, chromedp.Text(`#total-rate`))
	if err != nil {
		t.Fatal(err)
	}
	edge, err := chromedp.Run(ctx, chromedp.AttributeValue(`#graph g.edge[data-from="handler:conformance"] text.edge-rate`, "data-rate"))
	if err != nil {
		t.Fatal(err)
	}
	edgeRate := edge.Value
	if v, _ := strconv.ParseFloat(total, 64); v <= 0 {
		t.Errorf("total rate %q, want > 0", total)
	}
	if v, _ := strconv.ParseFloat(edgeRate, 64); v <= 0 {
		t.Errorf("edge rate %q, want > 0", edgeRate)
	}
	// A plugin whose traffic is recorded says so, without a reload.
	if _, err := h.Host.SetRecording(ctx, "conformance", true); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
			const r = document.querySelector('#plugins tr[data-plugin="conformance"] td.role');
			return r && r.textContent === "handler (recording)";
		})()`, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("the page does not show the recording: %v", err)
	}
	cancel()
	closeTab()
	<-collected
	if len(problems) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(problems, "\n"))
	}
}
