package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/config"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

type flags struct {
	config, data, listen, db string
	tls, tlsCert, tlsKey     string
	allowInsecure, version   bool
	// MQTT: --mqtt-listen, --mqtt-advertise, --mqtt-broker,
	// --mqtt-username, --mqtt-password-file, --mqtt-ca.
	mqttListen, mqttAdvertise, mqttBroker  string
	mqttUsername, mqttPasswordFile, mqttCA string
}

// File names in the data folder.
const (
	adminTokenFile = "admin.token"
	noticeKeyFile  = "notice.key"
	sqliteFile     = "rpmfleet.db"
)

func run(ctx context.Context, f flags, log *slog.Logger) error {
	if f.version {
		fmt.Println("rpmfleet-server", version.String())
		return nil
	}
	attrs := []any{"version", version.String()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		attrs = append(attrs, "go", bi.GoVersion)
	}
	log.Info("rpmfleet-server starting", attrs...)

	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return err
		}
	}
	if f.data != "" {
		cfg.Data = f.data
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.db != "" {
		cfg.DB = f.db
	}
	if f.tls != "" {
		cfg.TLS = f.tls
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		cfg.TLSCert, cfg.TLSKey = f.tlsCert, f.tlsKey
	}
	if f.allowInsecure {
		cfg.AllowInsecureHTTP = true
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{
		{f.mqttListen, &cfg.MQTT.Listen}, {f.mqttAdvertise, &cfg.MQTT.Advertise}, {f.mqttBroker, &cfg.MQTT.Broker},
		{f.mqttUsername, &cfg.MQTT.Username}, {f.mqttPasswordFile, &cfg.MQTT.PasswordFile}, {f.mqttCA, &cfg.MQTT.CA},
	} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if err := cfg.Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("make data folder: %w", err)
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	key, err := noticeKey(filepath.Join(cfg.Data, noticeKeyFile))
	if err != nil {
		return err
	}
	// The signer's sequence numbers come from the clock (notice's
	// default), which is enough for one server; several replicas signing
	// for the same device would need a shared counter (SignerOptions.Seq).
	signer, err := notice.NewSigner(key, notice.SignerOptions{})
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	scheme := "http"
	switch {
	case cfg.TLS == "auto":
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cert, fp, err := autoTLS(filepath.Join(cfg.Data, "tls"), host)
		if err != nil {
			return err
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		log.Info("serving HTTPS with the server's own CA; enrol agents with --ca-fingerprint",
			"ca", filepath.Join(cfg.Data, "tls", caCertFile), "fingerprint", fp)
	case cfg.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load tls certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	mq, err := startPush(cfg.MQTT, tlsCfg, cfg.AllowInsecureHTTP, st, log)
	if err != nil {
		return err
	}
	defer mq.close()
	fopts := fleet.Options{NoticeKey: key.Public().(ed25519.PublicKey), Signer: signer, BrokerURL: mq.url, Log: log}
	if mq.pub != nil {
		fopts.Publisher = mq.pub
	}
	svc, err := fleet.New(ctx, st, fopts)
	if err != nil {
		return err
	}
	if err := firstAdminToken(ctx, svc, filepath.Join(cfg.Data, adminTokenFile), log); err != nil {
		return err
	}
	tmp := filepath.Join(cfg.Data, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("make upload folder: %w", err)
	}
	// Imports by repository URL read primary.xml too, so plans pin each
	// package's location and SHA-256.
	handler := api.New(svc, api.Options{TempDir: tmp, Source: source.Options{Locations: true}, Log: log})

	// No TCP keepalive probes (Go's default sends one every 15 s on each
	// idle connection): IdleTimeout closes idle connections anyway, and
	// the probes would be most of a polling device's traffic.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if tlsCfg != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving the API", "addr", scheme+"://"+ln.Addr().String()+protocol.PathPrefix, "data", cfg.Data)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	syncCtx, cancelSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		if len(cfg.Repositories) == 0 {
			return
		}
		repos := make([]fleet.Repository, len(cfg.Repositories))
		for i, r := range cfg.Repositories {
			repos[i] = fleet.Repository{URL: r.URL, Interval: time.Duration(r.Interval)}
			if repos[i].Interval == 0 {
				repos[i].Interval = config.DefaultSyncInterval
			}
		}
		fleet.NewSyncer(svc, nil, log).Run(syncCtx, repos)
	}()
	defer func() { cancelSync(); <-syncDone }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func openStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	if cfg.DB != "" {
		st, err := postgres.Open(ctx, cfg.DB)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.Data, sqliteFile))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	return st, nil
}

// noticeKey returns the server's Ed25519 notice key, making it (its seed,
// 0600) on first start.
func noticeKey(path string) (ed25519.PrivateKey, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed = make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		if err := writeSecret(path, seed); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("read notice key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("notice key %s: %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// firstAdminToken writes an admin token to path on first start (when the
// file is missing), so a new user can run the CLI at once.
func firstAdminToken(ctx context.Context, svc *fleet.Service, path string, log *slog.Logger) error {
	if _, err := os.Stat(path); err == nil {
		log.Info("admin token", "file", path)
		return nil
	}
	resp, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "initial-admin", Role: protocol.RoleAdmin})
	if err != nil {
		return fmt.Errorf("make the first admin token: %w", err)
	}
	if err := writeSecret(path, []byte(resp.Token+"\n")); err != nil {
		return err
	}
	abs, _ := filepath.Abs(path)
	log.Info("admin token written; use it with rpmfleet login --token \"$(cat FILE)\"", "file", abs, "id", resp.ID)
	return nil
}

// writeSecret writes a new file readable by its owner only, durably.
func writeSecret(path string, b []byte) error { return writeFile(path, b, 0o600) }

// writeFile writes a new file, durably; it refuses to overwrite one.
func writeFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
