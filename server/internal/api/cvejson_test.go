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
			Patched: []protocol.CVEPatched{{Device: device, Advisory: advisory}}}
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(resp)
		if got := appendCVE(nil, &resp); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("appendCVE =\n%q\nencoding/json =\n%q", got, want.Bytes())
		}
	})
}
