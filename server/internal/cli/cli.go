// Package cli implements rpmfleet, the fleet admin's command line: one
// function per subcommand, each parsing its flags, calling the server's
// HTTP API with an admin token, and printing a table for people or JSON
// (--json) for scripts.
//
// The token comes from --token, RPMFLEET_TOKEN or the login file
// (~/.config/rpmfleet/login.json, 0600, written by "rpmfleet login"), in that
// order; the server likewise. Tokens are never printed except by the
// commands that create them.
package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/cmdline"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitExposed says devices are exposed (cve) or advisories are
	// pending (device), as dnf check-update's 100 says updates are
	// available.
	ExitExposed = 100
)

// env is what every command gets.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// utc is --utc: times in UTC rather than the local zone; local
	// stands in for time.Local when set (tests).
	utc   bool
	local *time.Location
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, e *env, args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

// Main runs the admin CLI and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintf(stdout, "rpmfleet %s\n", version.String())
		return ExitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		cmdline.Unknown(stderr, "rpmfleet", args[0], append(slices.Collect(maps.Keys(commands)), "version", "help"))
		return ExitUsage
	}
	return c.run(ctx, e, args[1:])
}

// subcommands are the words that may follow a command, for completion.
var subcommands = map[string][]string{
	"device":       {"revoke", "delete"},
	"enroll-token": {"create", "list", "revoke"},
	"token":        {"create", "list", "revoke"},
	"group":        {"list", "show", "set", "delete", "policy"},
	"rollout":      {"create", "list", "show", "pause", "resume", "abort", "approve"},
	"completion":   {"bash", "zsh", "fish"},
}

// runCompletion writes the shell completion script.
func runCompletion(_ context.Context, e *env, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(e.stderr, "Usage: rpmfleet completion SHELL (%s)\n  bash: source <(rpmfleet completion bash)\n", cmdline.Shells)
		return ExitUsage
	}
	names := append(slices.Collect(maps.Keys(commands)), "version", "help")
	if err := cmdline.Completion(e.stdout, args[0], "rpmfleet", names, subcommands); err != nil {
		fmt.Fprintf(e.stderr, "rpmfleet: %v\n", err)
		return ExitUsage
	}
	return ExitOK
}

func init() {
	register("completion", "print the shell completion script (bash, zsh, fish)", runCompletion)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "rpmfleet %s: the fleet admin's command line.\n\nUsage: rpmfleet COMMAND [flags]\n\nCommands:\n", version.String())
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nEvery command takes --server URL and --token T (or RPMFLEET_SERVER, RPMFLEET_TOKEN, or a saved login).\n")
}

// conn is the server and token a command talks with.
type conn struct {
	server, token, ca string
}

// newFlagSet makes a command's flags, with --server and --token.
func newFlagSet(e *env, name, usageLine string, c *conn) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: rpmfleet %s\n\nFlags:\n", usageLine)
		fs.PrintDefaults()
	}
	fs.BoolVar(&e.utc, "utc", false, "show times in UTC rather than the local time zone")
	if c != nil {
		fs.StringVar(&c.server, "server", "", "fleet server URL (or RPMFLEET_SERVER, or the saved login)")
		fs.StringVar(&c.token, "token", "", "admin token (or RPMFLEET_TOKEN, or the saved login)")
		fs.StringVar(&c.ca, "ca", "", "PEM CA certificate to trust for the server, as DATA/tls/ca.crt of --tls auto (or RPMFLEET_CA, or the saved login)")
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	// Flags may follow positional arguments ("rpmfleet cve CVE-1 --json").
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK, false
			}
			return ExitUsage, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	fs.Parse(append([]string{"--"}, pos...))
	return 0, true
}

func fail(e *env, cmd string, err error) int {
	// The error may quote what the server said, which may quote what a
	// device sent.
	fmt.Fprintf(e.stderr, "rpmfleet %s: %s\n", cmd, show(err.Error()))
	return ExitError
}

// login is the saved login file's content.
type login struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	CA     string `json:"ca,omitempty"`
}

func loginPath(e *env) (string, error) {
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := e.getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "rpmfleet", "login.json"), nil
}

// client resolves the connection: flags, then the environment, then the
// saved login.
func (c conn) client(e *env) (*apiClient, error) {
	if c.server == "" {
		c.server = e.getenv("RPMFLEET_SERVER")
	}
	if c.token == "" {
		c.token = e.getenv("RPMFLEET_TOKEN")
	}
	if c.ca == "" {
		c.ca = e.getenv("RPMFLEET_CA")
	}
	if c.server == "" || c.token == "" {
		if p, err := loginPath(e); err == nil {
			if b, err := os.ReadFile(p); err == nil {
				var l login
				if err := json.Unmarshal(b, &l); err != nil {
					return nil, fmt.Errorf("read login %s: %w", p, err)
				}
				if c.server == "" {
					c.server = l.Server
				}
				if c.token == "" {
					c.token = l.Token
				}
				if c.ca == "" {
					c.ca = l.CA
				}
			}
		}
	}
	if c.server == "" {
		return nil, errors.New("no server: pass --server URL, set RPMFLEET_SERVER or run rpmfleet login")
	}
	if c.token == "" {
		return nil, errors.New("no token: pass --token T, set RPMFLEET_TOKEN or run rpmfleet login")
	}
	hc := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if c.ca != "" {
		pemBytes, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, fmt.Errorf("read ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("read ca %s: no PEM certificate", c.ca)
		}
		hc.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return &apiClient{base: strings.TrimRight(c.server, "/"), token: c.token, hc: hc}, nil
}

// apiClient calls the server's API.
type apiClient struct {
	base, token string
	hc          *http.Client
}

// apiError is a non-2xx answer.
type apiError struct {
	status int
	body   protocol.Error
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.status, e.body.Error)
}

// do sends a request; body is JSON-encoded unless it is an io.Reader, sent as
// is with contentType.
func (a *apiClient) do(ctx context.Context, method, path string, body any, contentType string, out any) error {
	var rd io.Reader
	if r, ok := body.(io.Reader); ok {
		rd = r
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set(protocol.VersionHeader, strconv.Itoa(protocol.Version))
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &apiError{status: resp.StatusCode}
		if json.Unmarshal(b, &e.body) != nil || e.body.Error == "" {
			e.body.Error = strings.TrimSpace(string(b))
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

func (a *apiClient) get(ctx context.Context, path string, out any) error {
	return a.do(ctx, http.MethodGet, path, nil, "", out)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(jsonEscaper{w})
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// labelFlag is a repeatable key=value flag.
type labelFlag map[string]string

func (l labelFlag) String() string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	l[k] = v
	return nil
}

// fmtTime shows a time in the local time zone (TZ, else /etc/localtime)
// with the zone named, or in UTC with --utc.
func (e *env) fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	loc := time.Local
	if e.local != nil {
		loc = e.local
	}
	if e.utc {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

func esc(s string) string { return url.PathEscape(s) }
