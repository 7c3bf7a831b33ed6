package report

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWrongKernel: a device whose reboot came back on the old kernel still
// waits for a reboot (the daemon's STATE/reboot.json says wrong-kernel);
// the other stages, a missing or garbled record do not say so.
func TestWrongKernel(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       bool
	}{
		{"wrong kernel", `{"version": 1, "stage": "wrong-kernel", "kernel": "5.14.0-2.el9", "running": "5.14.0-1.el9.aarch64"}`, true},
		{"rebooting", `{"version": 1, "stage": "rebooting"}`, false},
		{"garbled", `{"stage": "wrong-kernel"`, false},
		{"none", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.body != "" {
				if err := os.WriteFile(filepath.Join(dir, "reboot.json"), []byte(tc.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := wrongKernel(dir); got != tc.want {
				t.Errorf("wrongKernel = %v, want %v", got, tc.want)
			}
		})
	}
}
