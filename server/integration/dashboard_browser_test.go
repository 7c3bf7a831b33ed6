package integration

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium (or another distribution's name for
// it); the test fails, not skips, without one: .ci/deps.sh installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium found (run make deps, which installs Debian's chromium package)")
	return ""
}

// browserLog collects what the page said and fetched.
type browserLog struct {
	mu       sync.Mutex
	errors   []string
	requests []string
}

func (b *browserLog) add(list *[]string, s string) {
	b.mu.Lock()
	*list = append(*list, s)
	b.mu.Unlock()
}

// TestDashboardInChromium drives a real headless Chromium against the real
// rpmfleet-server with real enrolled devices: it logs in with the admin
// token, searches CVE-2023-2650, sees pi-kitchen exposed, opens it and sees
// ALSA-2023:3722 pending, and keeps a screenshot of each page. Nothing the
// pages logged may be an error (a script error, a resource that failed, a
// Content-Security-Policy violation), and nothing may have been fetched
// from outside the server's origin.
func TestDashboardInChromium(t *testing.T) {
	f := startMonitoredFleet(t)
	base, err := url.Parse(f.srv.url)
	if err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	var seen browserLog
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				seen.add(&seen.errors, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			seen.add(&seen.errors, "exception: "+ev.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			// Where Chromium reports a resource that failed to load, a
			// Content-Security-Policy violation, a form sent insecurely.
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				seen.add(&seen.errors, "log "+string(ev.Entry.Level)+": "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			seen.add(&seen.requests, ev.Request.URL)
		case *network.EventLoadingFailed:
			seen.add(&seen.errors, "loading failed: "+ev.ErrorText)
		}
	})
	if err != nil {
		t.Fatalf("start chromium (%s): %v", chromium(t), err)
	}

	shots := os.Getenv("RPMFLEET_ARTIFACTS")
	if shots == "" {
		shots = t.ArtifactDir()
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, "dashboard-"+name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nerrors: %v\nserver log:\n%s", what, err, seen.errors, f.srv.log)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}

	// Not logged in: sent to the login page.
	step("log in",
		chromedp.Navigate(f.srv.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), f.srv.admin),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("devices-count")))
	overview := text("main")
	screenshot("overview")
	// Search from the box every page has.
	step("search CVE-2023-2650",
		chromedp.SendKeys(chromedp.ID("cve-q"), "CVE-2023-2650"),
		chromedp.Click(chromedp.ID("cve-go")),
		chromedp.WaitVisible(chromedp.ID("exposed")))
	exposed := text("#exposed")
	screenshot("cve")
	step("open the exposed device",
		chromedp.Click(chromedp.CSS("#exposed a.device")),
		chromedp.WaitVisible(chromedp.ID("pending")))
	pending, status := text("#pending"), text("#device-status")
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	screenshot("device")
	// The rollouts page, from the nav every page has: this fleet has none.
	step("open the rollouts",
		chromedp.Click(chromedp.CSS(`nav a[href="/rollouts"]`)),
		chromedp.WaitVisible(chromedp.ID("rollouts")))
	rollouts := text("#rollouts")
	screenshot("rollouts")

	if !strings.Contains(overview, "2\ndevices") || !strings.Contains(overview, "Exposure over time") {
		t.Errorf("overview text = %q, want the device count and the chart", overview)
	}
	if !strings.Contains(exposed, "pi-kitchen") || !strings.Contains(exposed, "ALSA-2023:3722") || strings.Contains(exposed, "pi-garage") {
		t.Errorf("CVE-2023-2650's exposed table = %q, want pi-kitchen with ALSA-2023:3722 and not the patched pi-garage", exposed)
	}
	for _, want := range []string{"ALSA-2023:3722", "openssl-libs", "1:3.0.1-23.el9_0", "1:3.0.7-16.el9_2"} {
		if !strings.Contains(pending, want) {
			t.Errorf("pi-kitchen's pending advisories = %q, want %q", pending, want)
		}
	}
	if !strings.Contains(title, "pi-kitchen") || !strings.Contains(status, "in service") {
		t.Errorf("device page title %q, status %q; want pi-kitchen in service", title, status)
	}

	if !strings.Contains(rollouts, "Phase") || !strings.Contains(rollouts, "No rollouts") {
		t.Errorf("the rollouts table = %q, want its headers and no rollout", rollouts)
	}

	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.errors) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(seen.errors, "\n"))
	}
	if len(seen.requests) < 4 {
		t.Errorf("saw %d requests, want the pages and their stylesheet at least: did the network listener work?", len(seen.requests))
	}
	for _, r := range seen.requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme+"://"+u.Host != base.Scheme+"://"+base.Host {
			t.Errorf("the browser fetched %q, outside the server's origin %s", r, f.srv.url)
		}
	}
}
