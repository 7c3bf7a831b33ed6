package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    Config
		wantErr string
	}{
		{name: "empty file keeps defaults", toml: "", want: Default()},
		{name: "overrides", toml: "listen = \"0.0.0.0:9000\"\nallow_insecure_http = true\ndata = \"/srv/fleet\"\n",
			want: Config{Data: "/srv/fleet", Listen: "0.0.0.0:9000", AllowInsecureHTTP: true}},
		{name: "repositories", toml: "[[repository]]\nurl = \"https://repo.almalinux.org/almalinux/9/BaseOS/aarch64/os/\"\ninterval = \"90m\"\n[[repository]]\nurl = \"http://mirror/x\"\n",
			want: func() Config {
				c := Default()
				c.Repositories = []Repository{{URL: "https://repo.almalinux.org/almalinux/9/BaseOS/aarch64/os/", Interval: Duration(90 * time.Minute)}, {URL: "http://mirror/x"}}
				return c
			}()},
		{name: "bad interval", toml: "[[repository]]\nurl = \"http://x\"\ninterval = \"often\"\n", wantErr: "often"},
		{name: "misspelt key", toml: "lisen = \"x\"\n", wantErr: "unknown key lisen"},
		{name: "wrong type", toml: "listen = 8080\n", wantErr: "listen"},
		{name: "syntax", toml: "listen = \n", wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "server.toml")
			if err := os.WriteFile(path, []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Load: err = %v, want one naming %s and %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		c        Config
		insecure bool
		wantErr  bool
	}{
		{name: "defaults", c: Default()},
		{name: "ipv6 loopback", c: Config{Data: "d", Listen: "[::1]:8080"}},
		{name: "localhost", c: Config{Data: "d", Listen: "localhost:8080"}},
		{name: "all interfaces refused", c: Config{Data: "d", Listen: ":8080"}, insecure: true, wantErr: true},
		{name: "lan address refused", c: Config{Data: "d", Listen: "192.168.1.10:8080"}, insecure: true, wantErr: true},
		{name: "lan address allowed", c: Config{Data: "d", Listen: "192.168.1.10:8080", AllowInsecureHTTP: true}},
		{name: "bad listen", c: Config{Data: "d", Listen: "8080"}, wantErr: true},
		{name: "bad db", c: Config{Data: "d", Listen: "127.0.0.1:1", DB: "mysql://u:secret@h/db"}, wantErr: true},
		{name: "postgres", c: Config{Data: "d", Listen: "127.0.0.1:1", DB: "postgres://u@h/db"}},
		{name: "tls auto on all interfaces", c: Config{Data: "d", Listen: ":8443", TLS: "auto"}},
		{name: "own certificate on all interfaces", c: Config{Data: "d", Listen: ":8443", TLSCert: "c.pem", TLSKey: "k.pem"}},
		{name: "repository file URL", c: Config{Data: "d", Listen: ":1", TLS: "auto", Repositories: []Repository{{URL: "/srv/repo"}}}, wantErr: true},
		{name: "repository too often", c: Config{Data: "d", Listen: ":1", TLS: "auto", Repositories: []Repository{{URL: "http://x", Interval: Duration(time.Second)}}}, wantErr: true},
		{name: "tls misspelt", c: Config{Data: "d", Listen: ":8443", TLS: "yes"}, wantErr: true},
		{name: "certificate without key", c: Config{Data: "d", Listen: ":8443", TLSCert: "c.pem"}, wantErr: true},
		{name: "auto and certificate", c: Config{Data: "d", Listen: ":8443", TLS: "auto", TLSCert: "c.pem", TLSKey: "k.pem"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Check()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check = %v, want error %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrInsecure) != tt.insecure {
				t.Errorf("Check = %v, want ErrInsecure %v", err, tt.insecure)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Check leaks the password: %v", err)
			}
		})
	}
}
