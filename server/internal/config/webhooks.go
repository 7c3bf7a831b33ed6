package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// Webhook is one [[webhook]] table: a receiver of signed JSON
// notifications (server/internal/notify, docs/notifications.md).
//
//	[[webhook]]
//	name = "ops"                                 # in logs and delivery records, never the URL
//	url = "https://ntfy.example.org/hooks/rpmfleet"
//	secret_file = "/etc/rpmfleet/webhook-ops.secret"  # the HMAC key, first line
//	events = ["exposure", "rollback", "silent", "rollout-paused"]  # all when left out
//	min_severity = "Important"                   # exposure events only at or above
//	silent_after = "24h"                         # a device silent longer than this
//
// The URL is the admin's choice, and only http and https are accepted;
// the server sends to it whatever it resolves to, so an admin pointing it
// at an internal service gets the notifications there (docs/security.md).
type Webhook struct {
	Name        string   `toml:"name"`
	URL         string   `toml:"url"`
	SecretFile  string   `toml:"secret_file"`
	Events      []string `toml:"events"`
	MinSeverity string   `toml:"min_severity"`
	SilentAfter Duration `toml:"silent_after"`
}

// Webhook defaults.
const (
	// DefaultMinSeverity is the least severity of an exposure event
	// when min_severity is not given.
	DefaultMinSeverity = "Important"
	// DefaultSilentAfter is the silence threshold when silent_after is
	// not given.
	DefaultSilentAfter = 24 * time.Hour
	// MaxSecretFile bounds a webhook secret file.
	MaxSecretFile = 4 << 10
	// MinSecret is the shortest secret accepted, in bytes.
	MinSecret = 16
)

// WebhookEvents are the event types a webhook may ask for.
var WebhookEvents = []string{"exposure", "rollback", "silent", "rollout-paused"}

// NameOr is the webhook's name, or "webhook-N" (N counted from 1) when
// it has none.
func (w Webhook) NameOr(i int) string {
	if w.Name != "" {
		return w.Name
	}
	return fmt.Sprintf("webhook-%d", i+1)
}

// EventsOr is the events the webhook asked for, all when it named none.
func (w Webhook) EventsOr() []string {
	if len(w.Events) == 0 {
		return WebhookEvents
	}
	return w.Events
}

// Severity is the webhook's min_severity, DefaultMinSeverity when not
// given.
func (w Webhook) Severity() advisory.Severity {
	s, err := advisory.ParseSeverity(w.MinSeverity)
	if w.MinSeverity == "" || err != nil {
		s, _ = advisory.ParseSeverity(DefaultMinSeverity)
	}
	return s
}

// SilentAfterOr is silent_after, DefaultSilentAfter when not given.
func (w Webhook) SilentAfterOr() time.Duration {
	if w.SilentAfter == 0 {
		return DefaultSilentAfter
	}
	return time.Duration(w.SilentAfter)
}

// checkWebhooks reports webhooks that cannot work: a URL that is not
// http(s) with a host or that carries a user and password, a missing
// secret file, an unknown event or severity, a silence threshold under a
// minute, two webhooks of one name.
func checkWebhooks(ws []Webhook) error {
	names := map[string]bool{}
	for i, w := range ws {
		key := fmt.Sprintf("config: webhook[%d]", i)
		name := w.NameOr(i)
		if !webhookName(name) {
			return fmt.Errorf("%s.name: %q must be 1 to 64 letters, digits, '.', '_' or '-'", key, name)
		}
		if names[name] {
			return fmt.Errorf("%s.name: %q names two webhooks", key, name)
		}
		names[name] = true
		u, err := url.Parse(w.URL)
		if err != nil {
			// url's error quotes the URL, which may hold a token.
			return fmt.Errorf("%s.url: not a URL", key)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("%s.url: scheme %q is not http or https", key, u.Scheme)
		}
		if u.Host == "" {
			return fmt.Errorf("%s.url: no host", key)
		}
		if u.User != nil {
			return fmt.Errorf("%s.url: a user or password in the URL is refused (receivers check the signature instead)", key)
		}
		if w.SecretFile == "" {
			return fmt.Errorf("%s.secret_file: empty; every webhook signs with a secret of its own", key)
		}
		for _, e := range w.Events {
			known := false
			for _, k := range WebhookEvents {
				known = known || e == k
			}
			if !known {
				return fmt.Errorf("%s.events: %q is not one of %s", key, e, strings.Join(WebhookEvents, ", "))
			}
		}
		if w.MinSeverity != "" {
			if _, err := advisory.ParseSeverity(w.MinSeverity); err != nil {
				return fmt.Errorf("%s.min_severity: %q is not None, Low, Moderate, Important or Critical", key, w.MinSeverity)
			}
		}
		if w.SilentAfter < 0 || w.SilentAfter > 0 && time.Duration(w.SilentAfter) < time.Minute {
			return fmt.Errorf("%s.silent_after: %v is shorter than a minute", key, time.Duration(w.SilentAfter))
		}
	}
	return nil
}

func webhookName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ErrSecretFile is returned by ReadSecret for a secret file it refuses.
var ErrSecretFile = errors.New("config: webhook secret file")

// ReadSecret reads a webhook's secret: the first line of SecretFile,
// without its line end. The file must be a regular file (a FIFO is
// refused without blocking), readable by its owner and group only, at
// most MaxSecretFile bytes, and the secret at least MinSecret bytes. An
// error names the file and never quotes it.
func (w Webhook) ReadSecret() ([]byte, error) {
	f, err := os.OpenFile(w.SecretFile, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecretFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecretFile, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w %s: not a regular file", ErrSecretFile, w.SecretFile)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%w %s: readable by every user (mode %v); chmod o-r it", ErrSecretFile, w.SecretFile, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrSecretFile, w.SecretFile, err)
	}
	if len(b) > MaxSecretFile {
		return nil, fmt.Errorf("%w %s: larger than %d bytes", ErrSecretFile, w.SecretFile, MaxSecretFile)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if len(line) < MinSecret {
		return nil, fmt.Errorf("%w %s: the first line holds %d bytes, want at least %d (openssl rand -hex 32 makes one)", ErrSecretFile, w.SecretFile, len(line), MinSecret)
	}
	return []byte(line), nil
}
