package config

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseAccepted: what Parse accepts is a configuration the daemon can
// run on: poll intervals above zero and jitter under the interval, the same
// value parsed twice (nothing depends on map order), and no document over
// MaxSize.
func FuzzParseAccepted(f *testing.F) {
	f.Add("server = \"https://fleet.example:8443\"\n[poll]\ninterval = \"1h\"\njitter = \"5m\"\nconnected_interval = \"12h\"\n")
	f.Add("[poll]\ninterval = \"1s\"\n")
	f.Add("[poll]\njitter = \"0s\"\nconnected_interval = \"1ns\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Parse(strings.NewReader(src), "f.toml")
		if err != nil {
			return
		}
		if len(src) > MaxSize {
			t.Fatalf("accepted a %d-byte document, limit %d", len(src), MaxSize)
		}
		p := c.Poll
		if p.Interval <= 0 || p.ConnectedInterval <= 0 || p.Jitter < 0 || p.Jitter >= p.Interval {
			t.Fatalf("accepted poll %+v from %q", p, src)
		}
		again, err := Parse(strings.NewReader(src), "f.toml")
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("parsed %q twice differently: %v", src, err)
		}
	})
}
