// Package pgtest runs a throwaway PostgreSQL server for tests: initdb in a
// temporary directory, the server on a free loopback port with its socket
// in that directory, a fresh database per test, and everything removed when
// the tests end.
//
// PostgreSQL refuses to run as root, and CI runs tests as root, so as root
// the harness runs initdb and postgres as the "postgres" system user (or
// "nobody" when there is none) through the process credentials, owning the
// temporary directory. The server trades durability for speed (fsync off):
// its data dies with the test.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres is returned when no PostgreSQL server binaries are found.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL not found (initdb, postgres); run make deps")

// Server is a running throwaway PostgreSQL.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	exit chan error
	n    atomic.Int64
}

// BinDir finds PostgreSQL's server binaries: pg_config --bindir, then
// Debian's /usr/lib/postgresql/N/bin and the PGDG /usr/pgsql-N/bin (newest
// first), then $PATH.
func BinDir() (string, error) {
	has := func(dir string) bool {
		_, err1 := os.Stat(filepath.Join(dir, "initdb"))
		_, err2 := os.Stat(filepath.Join(dir, "postgres"))
		return err1 == nil && err2 == nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		dirs, _ := filepath.Glob(pattern)
		for i := len(dirs) - 1; i >= 0; i-- {
			if has(dirs[i]) {
				return dirs[i], nil
			}
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

// Start initialises and starts a server. Stop it with Stop.
func Start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rpmfleet-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A port found free can be taken before the server binds it; try again
	// on another.
	var lastErr error
	for range 5 {
		s := &Server{dir: dir}
		if lastErr = s.start(bin, data, cred); lastErr != nil {
			continue
		}
		c, err := pgx.Connect(context.Background(), s.url("postgres"))
		if err == nil {
			_, err = c.Exec(context.Background(), "CREATE DATABASE "+testDB)
			c.Close(context.Background())
		}
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("pgtest: create database: %w", err)
		}
		return s, nil
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// credential returns the credential to run PostgreSQL with, and gives
// dir to that user; nil when not root.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root and no postgres or nobody user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start(bin, data string, cred *syscall.Credential) error {
	if s.port == 0 { // a restart keeps its port
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("pgtest: free port: %w", err)
		}
		s.port = port
	}
	port := s.port
	var log bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.cmd = cmd
	s.exit = make(chan error, 1)
	go func() { s.exit <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exit:
			return fmt.Errorf("pgtest: postgres exited: %v\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.url("postgres"))
		if err == nil {
			c.Close(ctx)
			cancel()
			return nil
		}
		cancel()
	}
	s.kill()
	return fmt.Errorf("pgtest: postgres not ready after 30s\n%s", log.String())
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDatabase returns the URL of an empty database for t: a fresh schema
// of the server's test database, made the connection's search_path, so it
// costs milliseconds where CREATE DATABASE costs seconds. It is dropped
// when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", s.n.Add(1))
	if err := s.admin(context.Background(), "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := s.admin(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema: %v", err)
		}
	})
	return s.url(testDB) + "&search_path=" + name
}

// testDB is the database NewDatabase makes schemas in.
const testDB = "rpmfleet"

func (s *Server) admin(ctx context.Context, stmt string) error {
	c, err := pgx.Connect(ctx, s.url(testDB))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, stmt)
	return err
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.exit
	}
}

// Stop shuts the server down (fast shutdown, then a kill after 10 s) and
// removes its directory.
func (s *Server) Stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exit:
		case <-time.After(10 * time.Second):
			s.kill()
		}
	}
	return os.RemoveAll(s.dir)
}

// Main is a TestMain body: it starts a server into *srv, runs the tests,
// stops the server and exits. A missing PostgreSQL fails the tests (never
// skips them): CI must run the PostgreSQL suite.
func Main(m *testing.M, srv **Server) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, ErrNoPostgres) {
			fmt.Fprintln(os.Stderr, "FAIL: the PostgreSQL tests need PostgreSQL: run make deps")
		}
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: stop:", err)
	}
	os.Exit(code)
}
