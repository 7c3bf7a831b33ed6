package update

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmtest"
)

func TestFetch(t *testing.T) {
	src := t.TempDir()
	body := []byte(strings.Repeat("rpmfleet package bytes\n", 1000))
	if err := os.WriteFile(filepath.Join(src, "p.rpm"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	srv := rpmtest.Serve(t, src)
	f := &fetcher{client: http.DefaultClient, log: func(string, ...any) {}}
	ctx := context.Background()

	tests := []struct {
		name      string
		cut       int64
		cutTimes  int
		checksum  string
		size      int64
		wantErr   error
		wantFrom  int64
		localFile bool
	}{
		{name: "whole", checksum: sum, size: int64(len(body))},
		{name: "cut once, resumed by the next try", cut: 5000, cutTimes: 1, checksum: sum, size: int64(len(body)), wantFrom: 5000},
		{name: "cut every try", cut: 100, cutTimes: downloadTries, checksum: sum, size: int64(len(body)), wantErr: ErrDownload, wantFrom: 100},
		{name: "digest differs", checksum: "sha256:" + strings.Repeat("0", 64), size: int64(len(body)), wantErr: ErrChecksum},
		{name: "size differs", checksum: sum, size: int64(len(body)) - 1, wantErr: ErrChecksum},
		{name: "unknown digest type", checksum: "md5:00", size: int64(len(body)), wantErr: ErrChecksum},
		{name: "local file", checksum: sum, size: int64(len(body)), localFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "p.rpm")
			srv.CutAfter(tt.cut, tt.cutTimes)
			defer srv.CutAfter(0, 0)
			url := srv.URL + "/p.rpm"
			if tt.localFile {
				url = filepath.Join(src, "p.rpm")
			}
			from, err := f.fetch(ctx, url, dst, tt.checksum, tt.size)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("fetch: %v, want %v", err, tt.wantErr)
			}
			if from != tt.wantFrom {
				t.Errorf("resumed at %d, want %d", from, tt.wantFrom)
			}
			if tt.wantErr != nil {
				if _, err := os.Stat(dst); err == nil {
					t.Error("a refused download was kept")
				}
				return
			}
			got, _ := os.ReadFile(dst)
			if string(got) != string(body) {
				t.Errorf("downloaded %d bytes, not the file", len(got))
			}
			// A file already there and right is not fetched again.
			n := srv.Total()
			if _, err := f.fetch(ctx, url, dst, tt.checksum, tt.size); err != nil || srv.Total() != n {
				t.Errorf("second fetch: %v, %d requests", err, srv.Total()-n)
			}
		})
	}
}
