// Package integration runs the fleet story end to end with the real
// binaries: rpmfleet-server on a free loopback port with a temporary data
// folder, the rpmfleet admin CLI, and rpmfleet-agent on device roots whose rpm
// databases the real rpm wrote. It also tries to break every security rule
// of the API with plain HTTP requests.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

var bins = map[string]string{
	"rpmfleet-server": "github.com/rpmfleet/rpmfleet/server/cmd/rpmfleet-server",
	"rpmfleet":        "github.com/rpmfleet/rpmfleet/server/cmd/rpmfleet",
	"rpmfleet-agent":  "github.com/rpmfleet/rpmfleet/agent/cmd/rpmfleet-agent",
	"demorepo":        "github.com/rpmfleet/rpmfleet/internal/rpmtest/cmd/demorepo",
}

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rpmfleet-server-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build", "-o", dir + "/"}
	for _, pkg := range bins {
		args = append(args, pkg)
	}
	build := exec.Command("go", args...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running rpmfleet-server.
type server struct {
	url   string
	data  string
	admin string // the admin token it wrote
	cmd   *exec.Cmd
	log   *bytes.Buffer
}

// startServer starts rpmfleet-server on a free loopback port with data in
// dataDir, and waits until it answers.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	return startServerAt(t, dataDir, freeAddr(t), extra...)
}

// startServerAt starts rpmfleet-server listening on addr, with extra flags.
func startServerAt(t *testing.T, dataDir, addr string, extra ...string) *server {
	t.Helper()
	s := &server{url: "http://" + addr, data: dataDir, log: &bytes.Buffer{}}
	s.cmd = exec.Command(filepath.Join(binDir, "rpmfleet-server"), append([]string{"--data", dataDir, "--listen", addr}, extra...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "serving the API") {
				once = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() { s.stop(t) })
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("rpmfleet-server did not start:\n%s", s.log)
	}
	if strings.Contains(s.log.String(), "addr=https://") {
		s.url = "https://" + addr
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	s.admin = strings.TrimSpace(string(b))
	return s
}

// stop ends the server with SIGTERM, as systemd would, and checks it shut
// down cleanly.
func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("rpmfleet-server did not stop cleanly: %v\n%s", err, s.log)
		}
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
		t.Errorf("rpmfleet-server ignored SIGTERM")
	}
}

// kill ends the server with SIGKILL: no shutdown, no flush.
func (s *server) kill() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// result is one run of a binary.
type result struct {
	stdout, stderr string
	code           int
}

// run runs one of the binaries with env added to a clean environment.
func run(t *testing.T, env []string, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return result{out.String(), errb.String(), code}
}

// must runs a binary and fails the test unless it exits 0.
func must(t *testing.T, env []string, bin string, args ...string) result {
	t.Helper()
	r := run(t, env, bin, args...)
	// 100 is the admin CLI's "devices exposed" answer (cve, device), a
	// success, as dnf check-update's.
	if r.code != 0 && (r.code != 100 || bin != "rpmfleet") {
		t.Fatalf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", bin, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func fixtures(t testing.TB) string {
	t.Helper()
	dir, err := rpmtest.FixturesDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// devRoot makes a device root with AlmaLinux 9.2's os-release and pkgs in
// an rpm database written by the real rpm.
func devRoot(t *testing.T, pkgs ...rpmtest.Package) string {
	t.Helper()
	osr, err := os.ReadFile(filepath.Join(fixtures(t), "os-release", "almalinux-9.2-host.os-release"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := rpmtest.NewDevRoot(root, osr, pkgs); err != nil {
		t.Fatalf("make device root (run make deps if rpm is missing): %v", err)
	}
	return root
}

// upgrade replaces packages in a device root's database with the real rpm,
// as an update would: rpm -U --justdb of newer stubs.
func upgrade(t *testing.T, root string, pkgs ...rpmtest.Package) {
	t.Helper()
	files, err := rpmtest.Build(t.TempDir(), pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--root", root, "--dbpath", rpmtest.DBPath, "-U", "--justdb", "--nodeps", "--ignorearch", "--noscripts", "--nosignature"}, files...)
	if out, err := exec.Command("rpm", args...).CombinedOutput(); err != nil {
		t.Fatalf("rpm %v: %v\n%s", args, err, out)
	}
}

// call makes one API request with a bearer secret and decodes a 2xx answer
// into out; it returns the status and the raw body.
func call(t *testing.T, method, url, secret string, body any, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// rawCall is call without a testing.T, for goroutines: it sends body as
// JSON and returns the status and body.
func rawCall(hc *http.Client, method, url, secret string, body any) (int, []byte, error) {
	j, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(j))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// apiError decodes an error body.
func apiError(t *testing.T, raw []byte) protocol.Error {
	t.Helper()
	var e protocol.Error
	if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not a protocol.Error", raw)
	}
	return e
}
