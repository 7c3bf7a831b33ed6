package osv

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
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
		for _, descs := range []bool{false, true} {
			var opts Options
			if filter {
				opts.Ecosystem = "AlmaLinux:9"
			}
			opts.Descriptions = descs
			fuzzDecoder(t, data, opts)
		}
	})
}

// fuzzDecoder is one FuzzDecoder check, with and without descriptions.
func fuzzDecoder(t *testing.T, data []byte, opts Options) {
	want, werr := referenceDecode(data, opts)
	got, err := decodeAll(bytes.NewReader(data), opts)
	var e *Error
	if err != nil && !errors.As(err, &e) {
		t.Fatalf("error %q is a %T, not an *Error", err, err)
	}
	if inflated(data) > MaxFieldSize {
		// The reference has no limits; past the smallest of them
		// only the error's type is held.
		return
	}
	if (err != nil) != (werr != nil) {
		t.Fatalf("error %v, reference error %v", err, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("%d advisories, reference %d (error %v)", len(got), len(want), err)
	}
	for i := range got {
		if msg := diffAdvisory(&got[i], &want[i]); msg != "" {
			t.Fatalf("advisory %d (descriptions %v): %s", i, opts.Descriptions, msg)
		}
		if len(got[i].Description) > advisory.MaxDescription || (!opts.Descriptions && got[i].Description != "") {
			t.Fatalf("advisory %d: a %d-byte description (descriptions %v)", i, len(got[i].Description), opts.Descriptions)
		}
	}
}

// inflated is how many bytes data decompresses to (its length when plain).
func inflated(data []byte) int64 {
	rc, _, err := compressed.NewReader(bytes.NewReader(data))
	if err != nil {
		return int64(len(data))
	}
	defer rc.Close()
	n, _ := io.Copy(io.Discard, rc)
	return n
}
