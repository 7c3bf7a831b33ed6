package fleet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
)

// Repository is a repository the server syncs advisories from.
type Repository struct {
	// URL is the repository's base URL, with repodata/repomd.xml below.
	URL string
	// Interval is how often repomd.xml is checked.
	Interval time.Duration
}

// Syncer imports advisories from repositories on a schedule. A repository
// costs one small request per check: its updateinfo is fetched and imported
// only when repomd.xml changed since the last import, with the locations
// and SHA-256 of the packages it fixes read from primary.xml.
type Syncer struct {
	svc *Service
	hc  *http.Client
	log *slog.Logger
}

// NewSyncer returns a Syncer importing into svc; a nil hc means a client
// with a 5-minute timeout.
func NewSyncer(svc *Service, hc *http.Client, log *slog.Logger) *Syncer {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{svc: svc, hc: hc, log: log.With("component", "sync")}
}

// Run checks every repository now and then at its interval, until ctx
// ends. Each repository has its own goroutine, which alone holds what it
// last imported; a failed check is logged and tried again at the next tick.
func (s *Syncer) Run(ctx context.Context, repos []Repository) {
	done := make(chan struct{})
	for _, r := range repos {
		go func() {
			defer func() { done <- struct{}{} }()
			var last [sha256.Size]byte
			t := time.NewTicker(r.Interval)
			defer t.Stop()
			for {
				sum, res, err := s.Sync(ctx, r.URL, last)
				switch {
				case err != nil:
					s.log.Warn("repository sync failed", "url", r.URL, "err", err)
				case sum != last:
					last = sum
					s.log.Info("repository synced", "url", r.URL, "advisories", res.Advisories, "changed", res.Changed)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	for range repos {
		<-done
	}
}

// SyncResult is what one Sync imported.
type SyncResult struct {
	// Imported says repomd.xml had changed and the advisories were read.
	Imported            bool
	Advisories, Changed int
}

// Sync fetches url's repomd.xml and, when its SHA-256 differs from last,
// imports the repository's advisories. It returns the new repomd.xml
// digest, which the caller passes as last next time.
func (s *Syncer) Sync(ctx context.Context, url string, last [sha256.Size]byte) ([sha256.Size]byte, SyncResult, error) {
	base := strings.TrimRight(url, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/repodata/repomd.xml", nil)
	if err != nil {
		return last, SyncResult{}, fmt.Errorf("sync %s: %w", url, err)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return last, SyncResult{}, fmt.Errorf("sync %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return last, SyncResult{}, fmt.Errorf("sync %s: repomd.xml: %s", url, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(resp.Body, 16<<20)); err != nil {
		return last, SyncResult{}, fmt.Errorf("sync %s: repomd.xml: %w", url, err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum == last {
		return last, SyncResult{}, nil
	}
	advs, err := source.Load(ctx, base+"/", source.Options{HTTPClient: s.hc, Locations: true, Descriptions: true})
	if err != nil {
		return last, SyncResult{}, fmt.Errorf("sync %s: %w", url, err)
	}
	res, err := s.svc.Import(ctx, advs)
	if err != nil {
		return last, SyncResult{}, fmt.Errorf("sync %s: %w", url, err)
	}
	return sum, SyncResult{Imported: true, Advisories: res.Advisories, Changed: res.Changed}, nil
}
