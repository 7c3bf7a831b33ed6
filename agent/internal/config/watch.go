package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchDelay is how long Watch waits after the last change before reading
// the file: an editor saves in several steps.
const WatchDelay = 200 * time.Millisecond

// Watch reloads the configuration at path each time it changes, until ctx
// is done, and then returns nil. A valid new file goes to onChange; an
// invalid or unreadable one goes to onError and the caller keeps the
// configuration it has. A save that leaves the content as it was delivers
// nothing. Both callbacks run on Watch's goroutine.
//
// It watches the file's folder, not the file: editors and configuration
// tools replace a file by writing a new one and renaming it over the old,
// which a watch on the old file would not see.
func Watch(ctx context.Context, path string, onChange func(*Config), onError func(error)) error {
	return watch(ctx, path, WatchDelay, nil, onChange, onError)
}

// watch is Watch with the debounce delay and a hook called once the watch
// is in place, for tests.
func watch(ctx context.Context, path string, delay time.Duration, started func(), onChange func(*Config), onError func(error)) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	// last is the digest of the content last known good, so a save
	// without a change delivers nothing.
	var last []byte
	if b, err := os.ReadFile(abs); err == nil {
		sum := sha256.Sum256(b)
		last = sum[:]
	}
	if started != nil {
		started()
	}
	timer := time.NewTimer(delay)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer.Reset(delay)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			onError(fmt.Errorf("watch config: %w", err))
		case <-timer.C:
			b, err := os.ReadFile(abs)
			if err != nil {
				onError(fmt.Errorf("read config: %w", err))
				continue
			}
			sum := sha256.Sum256(b)
			if bytes.Equal(sum[:], last) {
				continue
			}
			c, err := Load(abs)
			if err != nil {
				onError(err)
				continue
			}
			last = sum[:]
			onChange(c)
		}
	}
}
