package api

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestAppendCVE: the CVE answer's hand-written encoding is byte for byte
// what encoding/json writes, for plain names and for names that need
// escaping.
func TestAppendCVE(t *testing.T) {
	tests := []struct {
		name string
		resp protocol.CVEResponse
	}{
		{"empty", protocol.CVEResponse{CVE: "CVE-1999-0001", Exposed: []protocol.CVEExposure{}, Patched: []protocol.CVEPatched{}}},
		{"plain", protocol.CVEResponse{CVE: "CVE-2023-2650",
			Exposed: []protocol.CVEExposure{
				{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
				{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl-libs", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"},
			},
			Patched: []protocol.CVEPatched{{Device: "pi-garage", Advisory: "ALSA-2023:3722"}, {Device: "pi-barn", Advisory: "ALSA-2023:6330"}}}},
		{"a page", protocol.CVEResponse{CVE: "CVE-2023-2650", Exposed: []protocol.CVEExposure{}, Next: "pi-<7>",
			Patched: []protocol.CVEPatched{{Device: "pi-<7>", Advisory: "ALSA-2023:3722"}}}},
		{"names to escape", protocol.CVEResponse{CVE: `CVE-"x"`,
			Exposed: []protocol.CVEExposure{{Device: "pi\n<kitchen>&\"\\\t\x01é\u2028", Advisory: "A", Package: "p", Installed: "1", Fixed: "2"}},
			Patched: []protocol.CVEPatched{{Device: "bad utf-8 \xff\xfe", Advisory: "B"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(tt.resp); err != nil {
				t.Fatal(err)
			}
			if got := appendCVE(nil, &tt.resp); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("appendCVE =\n%s\nencoding/json =\n%s", got, want.Bytes())
			}
		})
	}
}

// FuzzAppendCVE: any device name encodes as encoding/json encodes it.
func FuzzAppendCVE(f *testing.F) {
	f.Add("pi-kitchen", "ALSA-2023:3722")
	f.Add("<\u2028\xff>", `"\`)
	f.Fuzz(func(t *testing.T, device, advisory string) {
		resp := protocol.CVEResponse{CVE: advisory,
			Exposed: []protocol.CVEExposure{{Device: device, Advisory: advisory, Package: device}},
			Patched: []protocol.CVEPatched{{Device: device, Advisory: advisory}}, Next: device}
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(resp)
		if got := appendCVE(nil, &resp); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("appendCVE =\n%q\nencoding/json =\n%q", got, want.Bytes())
		}
	})
}

// TestCVELimit: limit asks for a page and must be a number from 1 to
// maxCVEPage; a 400 names the field.
func TestCVELimit(t *testing.T) {
	h, admin := newTestServer(t)
	for _, tt := range []struct {
		query string
		code  int
	}{
		// No advisory is imported here: a well-formed query answers
		// 404 naming the id, the CVE being unknown.
		{"", 404},
		{"?limit=10", 404},
		{"?limit=10&after=pi-kitchen", 404},
		{"?limit=0", 400},
		{"?limit=ten", 400},
		{"?limit=10001", 400},
	} {
		t.Run(tt.query, func(t *testing.T) {
			w, e := do(t, h, "GET", protocol.PathCVE+"CVE-2023-2650"+tt.query, admin, "", "")
			if w.Code != tt.code || (tt.code == 400 && e.Field != "limit") || (tt.code == 404 && e.Field != "id") {
				t.Fatalf("GET %s: %d %+v, want %d", tt.query, w.Code, e, tt.code)
			}
			if tt.code != 200 {
				return
			}
			var resp protocol.CVEResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Exposed == nil || resp.Next != "" {
				t.Errorf("GET %s = %s, %v; want empty lists and no next", tt.query, w.Body, err)
			}
		})
	}
}
