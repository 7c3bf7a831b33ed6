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
	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/version"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/config"
	"github.com/rpmfleet/rpmfleet/server/internal/dashboard"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/metrics"
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
	if err := prepareDataDir(cfg.Data, log); err != nil {
		return err
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
	// On PostgreSQL the server is a replica (replica.go), alone or not:
	// the signer's sequence numbers come from the database. Alone on
	// SQLite they come from the clock (notice's default).
	rep, err := startReplica(ctx, cfg.DB, log)
	if err != nil {
		return err
	}
	signer, err := notice.NewSigner(key, notice.SignerOptions{Seq: rep.seqFunc()})
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
	// The metrics read the fleet's gauges from the store when scraped, and
	// are told of reports, imports and publications by the service.
	mopts := metrics.Options{Fleet: st, Log: log}
	checks := []metrics.Check{metrics.StoreCheck(st)}
	if mq.embedded != nil {
		mopts.Broker = mq.embedded
		checks = append(checks, metrics.ListenerCheck("broker", mq.embedded.Addr()))
	}
	mets := metrics.New(mopts)
	fopts := fleet.Options{NoticeKey: key.Public().(ed25519.PublicKey), Signer: signer, BrokerURL: mq.url, Log: log, Observer: mets}
	if mq.pub != nil {
		fopts.Publisher = mq.pub
	}
	if fopts.Webhooks, err = webhooks(cfg.Webhooks, log); err != nil {
		return err
	}
	rep.join(&fopts, mq.embedded != nil)
	svc, err := fleet.New(ctx, st, fopts)
	if err != nil {
		return err
	}
	defer rep.start(ctx, svc)()
	if err := firstAdminToken(ctx, svc, filepath.Join(cfg.Data, adminTokenFile), log); err != nil {
		return err
	}
	tmp := filepath.Join(cfg.Data, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("make upload folder: %w", err)
	}
	dash, err := dashboard.New(dashboard.Options{Store: st, Revoker: svc, Rollouts: svc, Audit: svc, Secure: tlsCfg != nil, Log: log,
		StoreError: func() { mets.StoreError("dashboard") }})
	if err != nil {
		return err
	}
	// Imports by repository URL read primary.xml too, so plans pin each
	// package's location and SHA-256.
	handler := api.New(svc, api.Options{TempDir: tmp, Source: source.Options{Locations: true}, Log: log,
		BodyTimeout: time.Duration(cfg.HTTP.BodyTimeout), MinBodyRate: cfg.HTTP.BodyMinRate,
		WriteTimeout: time.Duration(cfg.HTTP.WriteTimeout), MaxEnrolling: cfg.HTTP.MaxEnrolling,
		MaxEnrollingPerAddress: cfg.HTTP.MaxEnrollingPerAddress,
		Dashboard:              dash, Metrics: mets.Handler(), Healthz: metrics.Healthz(), Readyz: metrics.Readyz(mets, log, checks...),
		FleetLock: api.FleetLockOptions{Auth: cfg.FleetLock.Auth, Slots: cfg.FleetLock.Slots, GroupSlots: cfg.FleetLock.Groups,
			Timeout: time.Duration(cfg.FleetLock.Timeout)}})

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
	// The headers are bounded here; bodies and answers per route by the
	// API (server/internal/api/deadline.go), since one ReadTimeout for
	// every route would either cut large imports or let a small body
	// drip for as long.
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
		rep.leader(syncCtx, "sync", func(ctx context.Context) { fleet.NewSyncer(svc, nil, log).Run(ctx, repos) })
	}()
	defer func() { cancelSync(); <-syncDone }()
	// Rollouts move phase by phase on this ticker (fleet.Service.Step).
	rolloutsDone := make(chan struct{})
	go func() {
		defer close(rolloutsDone)
		t := time.NewTicker(cfg.Rollouts.TickOrDefault())
		defer t.Stop()
		rep.leader(syncCtx, "rollouts", func(ctx context.Context) { svc.RunRollouts(ctx, t.C) })
	}()
	defer func() { cancelSync(); <-rolloutsDone }()
	// Webhook notifications: every server sends the outbox's due
	// deliveries; the leader looks for silent devices once a minute.
	if len(fopts.Webhooks) > 0 {
		hooksDone := make(chan struct{}, 2)
		go func() { svc.RunWebhooks(syncCtx); hooksDone <- struct{}{} }()
		go func() {
			t := time.NewTicker(silentLook)
			defer t.Stop()
			rep.leader(syncCtx, "webhooks", func(ctx context.Context) { svc.RunWebhookJobs(ctx, t.C, silentLook) })
			hooksDone <- struct{}{}
		}()
		defer func() { cancelSync(); <-hooksDone; <-hooksDone }()
	}
	// The overview's exposure chart: today's figures, recorded every
	// quarter of an hour (store.ExposureHistory, migration 0010).
	if h, ok := st.(store.ExposureHistory); ok {
		histDone := make(chan struct{})
		go func() {
			defer close(histDone)
			rep.leader(syncCtx, "exposure", func(ctx context.Context) { dashboard.RecordExposure(ctx, st, h, 0, nil, log) })
		}()
		defer func() { cancelSync(); <-histDone }()
	}
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
	// Made 0600 before SQLite opens it: SQLite would make it 0644 less the
	// umask, and gives the -wal and -shm files the database's mode.
	path := filepath.Join(cfg.Data, sqliteFile)
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	st, err := sqlite.Open(ctx, path)
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

// writeFile writes a new file through pkg/durable (a temporary file,
// fsync, rename, fsync of the folder: a power cut leaves the whole file or
// none, never an empty key); it refuses to replace one that exists.
func writeFile(path string, b []byte, mode os.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("write %s: %w", path, fs.ErrExist)
	}
	if err := durable.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// silentLook is how often the leader looks for devices gone silent.
const silentLook = time.Minute

// webhooks reads the configured webhooks' secrets. The log names each
// webhook and never its URL or secret.
func webhooks(ws []config.Webhook, log *slog.Logger) ([]fleet.Webhook, error) {
	var out []fleet.Webhook
	for i, w := range ws {
		secret, err := w.ReadSecret()
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", w.NameOr(i), err)
		}
		out = append(out, fleet.Webhook{Name: w.NameOr(i), URL: w.URL, Secret: secret, Events: w.EventsOr(),
			MinSeverity: w.Severity(), SilentAfter: w.SilentAfterOr()})
		log.Info("webhook configured", "webhook", w.NameOr(i), "events", w.EventsOr(), "min_severity", w.Severity(), "silent_after", w.SilentAfterOr())
	}
	return out, nil
}
