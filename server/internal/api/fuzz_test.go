package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// FuzzDecodeBodies holds the request decoder to its contract for every
// JSON body the API reads (enrolment, report, import, enrolment-token and
// token creation, command), chosen by the first byte: no panic; a refusal
// is a 400 or 413 with a message; what it accepts is a value that encodes
// and decodes back to itself, so nothing of the body was half-read.
func FuzzDecodeBodies(f *testing.F) {
	h, _ := newTestServer(f)
	kinds := []func() any{
		func() any { return new(protocol.EnrollRequest) },
		func() any { return new(protocol.Report) },
		func() any { return new(protocol.ImportRequest) },
		func() any { return new(protocol.EnrollTokenCreateRequest) },
		func() any { return new(protocol.TokenCreateRequest) },
		func() any { return new(protocol.Command) },
	}
	for i, s := range []string{
		`{"token":"t","name":"pi","device":{"hostname":"pi","arch":"aarch64"}}`,
		`{"id":"r1","full":true,"packages":[{"name":"bash","version":"5.1","release":"1","arch":"x86_64"}]}`,
		`{"urls":["https://example.org/repo/"]}`,
		`{"uses":3}`,
		`{"name":"ci","role":"operator"}`,
		`{"kind":"check"}`,
	} {
		f.Add(byte(i), s)
	}
	f.Add(byte(1), `{"id":"r1","packages":[{"name":1}]}`)
	f.Fuzz(func(t *testing.T, kind byte, body string) {
		v := kinds[int(kind)%len(kinds)]()
		req := httptest.NewRequest("POST", protocol.PathPrefix+"/x", strings.NewReader(body))
		w := httptest.NewRecorder()
		if !h.decode(w, req, 64<<10, v) {
			if w.Code != 400 && w.Code != 413 {
				t.Fatalf("decode(%q) answered %d", body, w.Code)
			}
			var e protocol.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("decode(%q) answered %q", body, w.Body)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("accepted %q, which does not encode: %v", body, err)
		}
		back := kinds[int(kind)%len(kinds)]()
		w = httptest.NewRecorder()
		if !h.decode(w, httptest.NewRequest("POST", protocol.PathPrefix+"/x", bytes.NewReader(b)), 64<<10+int64(len(b)), back) {
			t.Fatalf("accepted %q but not its own encoding %s: %s", body, b, w.Body)
		}
		if !reflect.DeepEqual(v, back) {
			t.Fatalf("accepted %q as %+v, which reads back as %+v", body, v, back)
		}
	})
}
