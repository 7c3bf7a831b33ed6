package osv

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecoder holds the Decoder to the plain encoding/json reading
// (referenceDecode) on any input: the same advisories before the first
// error, an error exactly when the reference has one, always an *Error, and
// never a panic.
func FuzzDecoder(f *testing.F) {
	files, _ := filepath.Glob("testdata/samples/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, false)
		f.Add(data, true)
	}
	// A gzip-compressed stream, so that the fuzzer reaches decompression.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"id":"ALSA-2099:1","affected":[{"package":{"ecosystem":"AlmaLinux:9","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"fixed":"1-1"}]}]}]}` + "\n"))
	zw.Close()
	f.Add(gz.Bytes(), false)
	f.Add([]byte(`{"id":"ALSA-1:1","affected":[{"package":{"ecosystem":"AlmaLinux:9","name":"a\u0062"},"ranges":[{"events":[{"fixed":"1-1","fixed":null}],"type":"ECOSYSTEM"}]}]}`), false)
	f.Add([]byte("{\"id\":\"x\"}\n{\"id\":5}"), true)
	f.Add([]byte(`{"id":"\ud800","summary":"  low : x","related":["CVE-1","CVE-1",null]} {}`), false)
	f.Fuzz(func(t *testing.T, data []byte, filter bool) {
		var opts Options
		if filter {
			opts.Ecosystem = "AlmaLinux:9"
		}
		want, werr := referenceDecode(data, opts)
		got, err := decodeAll(bytes.NewReader(data), opts)
		if (err != nil) != (werr != nil) {
			t.Fatalf("error %v, reference error %v", err, werr)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("error %q is a %T, not an *Error", err, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d advisories, reference %d (error %v)", len(got), len(want), err)
		}
		for i := range got {
			if msg := diffAdvisory(&got[i], &want[i]); msg != "" {
				t.Fatalf("advisory %d: %s", i, msg)
			}
		}
	})
}
