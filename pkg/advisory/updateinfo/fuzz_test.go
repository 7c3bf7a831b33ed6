package updateinfo

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// FuzzRoundTrip: what the decoder reads from any input, the encoder writes
// so that the decoder reads the same advisories back: nothing read is lost
// or changed on the way to a repository the project writes (the demo's,
// the tests').
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("<updates><update type=\"security\"><id>A-1</id><title>t</title><severity>Important</severity><issued date=\"2023-06-21 10:00:00\"/><references><reference type=\"cve\" id=\"CVE-2023-1\" href=\"https://x\" title=\"c\"/></references><pkglist><collection><module name=\"m\" stream=\"1\"/><package name=\"p\" epoch=\"1\" version=\"2\" release=\"3\" arch=\"x86_64\"><filename>p.rpm</filename><reboot_suggested>1</reboot_suggested></package></collection></pkglist></update></updates>"))
	f.Add([]byte("<updates><update><id> A </id><title>&lt;&amp;</title><references><reference type=\"bugzilla\">text title</reference></references></update></updates>"))
	f.Add([]byte("<updates><update><id>A-1</id><description>\n  One.\r\n\r\n* two &amp; three\n</description></update></updates>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, descs := range []bool{false, true} {
			roundTrip(t, data, descs)
		}
	})
}

// readAll is ReadAll, keeping descriptions when descs is set.
func readAll(r io.Reader, descs bool) ([]*advisory.Advisory, error) {
	d := NewDecoder(r)
	defer d.Close()
	if descs {
		d.KeepDescriptions()
	}
	var out []*advisory.Advisory
	for {
		a, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(a.Description) > advisory.MaxDescription || (!descs && a.Description != "") {
			return nil, fmt.Errorf("%s: a %d-byte description (descriptions %v)", a.ID, len(a.Description), descs)
		}
		out = append(out, a)
	}
}

// roundTrip is one FuzzRoundTrip check, with or without descriptions.
func roundTrip(t *testing.T, data []byte, descs bool) {
	advs, err := readAll(bytes.NewReader(data), descs)
	if err != nil && strings.Contains(err.Error(), "-byte description") {
		t.Fatal(err)
	}
	if err != nil || len(advs) == 0 {
		return
	}
	var buf bytes.Buffer
	if err := Encode(&buf, advs); err != nil {
		return // the encoder refuses what it cannot write
	}
	back, err := readAll(&buf, descs)
	if err != nil {
		t.Fatalf("encoded %d advisories read from %q as %q, which does not read back: %v", len(advs), data, buf.Bytes(), err)
	}
	if !reflect.DeepEqual(back, advs) {
		for i := range advs {
			if i < len(back) && !reflect.DeepEqual(back[i], advs[i]) {
				t.Fatalf("advisory %d changed on the way:\n read %+v\n back %+v\n from %q", i, advs[i], back[i], data)
			}
		}
		t.Fatalf("%d advisories read, %d back", len(advs), len(back))
	}
}
