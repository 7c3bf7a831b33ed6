package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWebhooks: [[webhook]] tables load with their defaults, and each
// setting that cannot work is refused naming the table and key; a URL's
// token never appears in the error.
func TestWebhooks(t *testing.T) {
	tests := []struct {
		name, toml string
		check      func(t *testing.T, c Config)
		err        string
	}{
		{name: "defaults", toml: "[[webhook]]\nurl = \"https://hooks.example.org/x\"\nsecret_file = \"/s\"\n", check: func(t *testing.T, c Config) {
			w := c.Webhooks[0]
			if w.NameOr(0) != "webhook-1" || len(w.EventsOr()) != 4 || w.Severity().String() != "Important" || w.SilentAfterOr() != 24*time.Hour {
				t.Errorf("defaults: name %q, events %v, severity %v, silent after %v", w.NameOr(0), w.EventsOr(), w.Severity(), w.SilentAfterOr())
			}
		}},
		{name: "everything", toml: "[[webhook]]\nname = \"chat\"\nurl = \"http://127.0.0.1:9/x\"\nsecret_file = \"/s\"\nevents = [\"rollback\"]\nmin_severity = \"Critical\"\nsilent_after = \"2h\"\n",
			check: func(t *testing.T, c Config) {
				w := c.Webhooks[0]
				if w.NameOr(0) != "chat" || len(w.EventsOr()) != 1 || w.Severity().String() != "Critical" || w.SilentAfterOr() != 2*time.Hour {
					t.Errorf("read %+v", w)
				}
			}},
		{name: "file scheme", toml: "[[webhook]]\nurl = \"file:///etc/shadow\"\nsecret_file = \"/s\"\n", err: `webhook[0].url: scheme "file" is not http or https`},
		{name: "gopher scheme", toml: "[[webhook]]\nurl = \"gopher://127.0.0.1:6379/_FLUSHALL\"\nsecret_file = \"/s\"\n", err: `scheme "gopher"`},
		{name: "no host", toml: "[[webhook]]\nurl = \"https:///x\"\nsecret_file = \"/s\"\n", err: "webhook[0].url: no host"},
		{name: "password in URL", toml: "[[webhook]]\nurl = \"https://u:hunter2hunter2@h/x\"\nsecret_file = \"/s\"\n", err: "user or password in the URL is refused"},
		{name: "no secret", toml: "[[webhook]]\nurl = \"https://h/x\"\n", err: "webhook[0].secret_file: empty"},
		{name: "unknown event", toml: "[[webhook]]\nurl = \"https://h/x\"\nsecret_file = \"/s\"\nevents = [\"reboot\"]\n", err: `webhook[0].events: "reboot" is not one of`},
		{name: "bad severity", toml: "[[webhook]]\nurl = \"https://h/x\"\nsecret_file = \"/s\"\nmin_severity = \"Urgent\"\n", err: `min_severity: "Urgent"`},
		{name: "short silence", toml: "[[webhook]]\nurl = \"https://h/x\"\nsecret_file = \"/s\"\nsilent_after = \"10s\"\n", err: "silent_after: 10s is shorter than a minute"},
		{name: "two of one name", toml: "[[webhook]]\nname = \"a\"\nurl = \"https://h/x\"\nsecret_file = \"/s\"\n[[webhook]]\nname = \"a\"\nurl = \"https://h/y\"\nsecret_file = \"/s\"\n", err: `webhook[1].name: "a" names two webhooks`},
		{name: "bad name", toml: "[[webhook]]\nname = \"a b\\u001b[31m\"\nurl = \"https://h/x\"\nsecret_file = \"/s\"\n", err: "webhook[0].name"},
		{name: "misspelt key", toml: "[[webhook]]\nurl = \"https://h/x\"\nsecret_fil = \"/s\"\n", err: "unknown key webhook.secret_fil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "server.toml")
			if err := os.WriteFile(p, []byte(tt.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if err == nil {
				err = c.Check()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error quotes the URL's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestReadSecret: the secret is the first line of a private regular file;
// a FIFO is refused without blocking, as are a world-readable file, a
// short secret and a huge file, and no error quotes the file.
func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "0123456789abcdef0123\r\nsecond line\n", 0o640)
	if s, err := (Webhook{SecretFile: good}).ReadSecret(); err != nil || string(s) != "0123456789abcdef0123" {
		t.Errorf("ReadSecret = %q, %v; want the first line", s, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, path, err string }{
		{"world-readable", write("open", "0123456789abcdef0123\n", 0o644), "readable by every user"},
		{"short", write("short", "sesame-secret\n", 0o600), "holds 13 bytes, want at least 16"},
		{"huge", write("huge", strings.Repeat("s", MaxSecretFile+10), 0o600), "larger than"},
		{"fifo", fifo, "not a regular file"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (Webhook{SecretFile: tt.path}).ReadSecret()
			if !errors.Is(err, ErrSecretFile) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("ReadSecret = %v; want ErrSecretFile saying %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "0123456789abcdef") || strings.Contains(err.Error(), "sesame") {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}
