package integration

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/compressed/compressedtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestImportBombs sends decompression bombs to the real rpmfleet-server
// the three ways it reads advisories from outside: an upload, a file by
// URL, and a repository by URL (repomd.xml leading to the updateinfo, the
// path sync takes), all from a loopback HTTP server. Each bomb is a few
// hundred KB at most and inflates to 400 MB: an updateinfo.xml whose
// <description> is the 400 MB (on main before the limits, the gzip one
// took the server to 1.1 GB), in gzip, xz, zstd and bzip2; an OSV object
// whose details are; and xz and zstd streams asking for a 1.5 GiB
// dictionary and a 128 MiB window. Each must get a 400 naming what was
// wrong, and the server's peak resident set (VmHWM) after all of them must
// stay under 200 MB.
func TestImportBombs(t *testing.T) {
	const head = "<?xml version=\"1.0\"?>\n<updates>\n<update type=\"security\">\n<id>ALSA-2099:0001</id>\n<description>"
	const tail = "</description>\n</update>\n</updates>\n"
	type bomb struct {
		name, file string
		data       []byte
		want       string // in the error answer
		repoWant   string // in the error answer as a repository's updateinfo, when not want
	}
	var bombs []bomb
	ext := map[compressed.Format]string{compressed.Gzip: ".gz", compressed.XZ: ".xz", compressed.Zstd: ".zst", compressed.Bzip2: ".bz2"}
	for _, f := range compressedtest.Formats {
		bombs = append(bombs, bomb{name: "updateinfo " + string(f), file: "updateinfo.xml" + ext[f],
			data: compressedtest.Bomb(t, f, head, 'A', 400, tail), want: "updateinfo: line 5: <description> longer than 1 MiB"})
	}
	bombs = append(bombs,
		// A repository's updateinfo must be XML: OSV there is text
		// before the root element, refused at 64 KiB.
		bomb{name: "osv gzip", file: "osv.jsonl.gz", data: compressedtest.Bomb(t, compressed.Gzip, `{"id":"ALSA-2099:1","details":"`, 'A', 400, `"}`),
			want: "osv: line 1: object too large: over 8 MiB", repoWant: "updateinfo: line 1: text in the prolog longer than 64 KiB"},
		bomb{name: "xz 1.5 GiB dictionary", file: "updateinfo.xml.xz", data: compressedtest.Bomb(t, compressed.XZ, head, 'A', 8, tail, "--lzma2=preset=0,dict=1536MiB"),
			want: "xz: compressed: window over the limit: a block asks for a 1536 MiB dictionary, more than 64 MiB"},
		bomb{name: "zstd 128 MiB window", file: "updateinfo.xml.zst", data: compressedtest.Bomb(t, compressed.Zstd, head, 'A', 8, tail, "--zstd=wlog=27"),
			want: "zstd: compressed: window over the limit: the stream asks for more than 64 MiB"},
	)

	// The loopback server the imports by URL fetch from: each bomb as a
	// file, and as the updateinfo of a repository of its own.
	files := map[string][]byte{}
	for i, b := range bombs {
		files[fmt.Sprintf("/files/%d/%s", i, b.file)] = b.data
		sum := sha256.Sum256(b.data)
		files[fmt.Sprintf("/repo%d/repodata/updateinfo.bin", i)] = b.data
		files[fmt.Sprintf("/repo%d/repodata/repomd.xml", i)] = []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision>
<data type="updateinfo"><checksum type="sha256">%s</checksum><location href="repodata/updateinfo.bin"/><size>%d</size></data>
</repomd>
`, hex.EncodeToString(sum[:]), len(b.data)))
	}
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer mirror.Close()

	srv := startServer(t, t.TempDir())
	imp := func(t *testing.T, contentType string, body []byte) (int, protocol.Error) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.url+protocol.PathImport, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+srv.admin)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e protocol.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	for i, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			t.Logf("%s: %d KB", b.name, len(b.data)>>10)
			fileURL := fmt.Sprintf("%s/files/%d/%s", mirror.URL, i, b.file)
			repoURL := fmt.Sprintf("%s/repo%d/", mirror.URL, i)
			for _, way := range []struct {
				name, ctype string
				body        []byte
				names       string // the source the error must name
				want        string
			}{
				{"upload", "application/octet-stream", b.data, "upload: ", b.want},
				{"file by URL", "application/json", []byte(`{"urls":["` + fileURL + `"]}`), fileURL + ": ", b.want},
				{"repository by URL", "application/json", []byte(`{"urls":["` + repoURL + `"]}`), repoURL, cmp.Or(b.repoWant, b.want)},
			} {
				status, e := imp(t, way.ctype, way.body)
				if status != http.StatusBadRequest || !strings.Contains(e.Error, way.want) || !strings.Contains(e.Error, way.names) {
					t.Errorf("%s: %d %q, want 400 naming %q and saying %q", way.name, status, e.Error, way.names, way.want)
				}
			}
		})
	}
	hwm := vmHWM(t, srv.cmd.Process.Pid)
	t.Logf("rpmfleet-server peak resident set after %d bombs three ways: %d MB", len(bombs), hwm>>20)
	if hwm > 200<<20 {
		t.Errorf("rpmfleet-server peak resident set %d MB, want under 200 MB", hwm>>20)
	}
	// The server is still whole: a real import goes through.
	osv, err := os.ReadFile(filepath.Join(fixtures(t), "almalinux-osv", "almalinux9.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if status, e := imp(t, "application/octet-stream", osv); status != http.StatusOK {
		t.Fatalf("real import after the bombs: %d %s", status, e.Error)
	}
}

// vmHWM reads a process's peak resident set from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
