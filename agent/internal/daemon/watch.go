package daemon

import (
	"context"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
)

// watchDB watches the rpm database's folder inside the root and pokes the
// loop on every change; the loop debounces.
func (d *daemon) watchDB(ctx context.Context) {
	db, err := rpmdb.Find(d.cfg.Root)
	if err != nil {
		d.log.Warn("rpm database not watched", "err", err)
		return
	}
	d.watch(ctx, filepath.Dir(db), false, d.dbEvents)
}

// watch forwards fsnotify events on dir (and, with subdirs, on the folders
// created in it) as pokes on ch until ctx is done.
func (d *daemon) watch(ctx context.Context, dir string, subdirs bool, ch chan struct{}) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(dir)
	}
	if err != nil {
		d.log.Warn("folder not watched", "dir", dir, "err", err)
		if w != nil {
			w.Close()
		}
		return
	}
	if subdirs {
		if des, err := os.ReadDir(dir); err == nil {
			for _, de := range des {
				if de.IsDir() && de.Name() != spoolDone && de.Name() != spoolFail {
					w.Add(filepath.Join(dir, de.Name()))
				}
			}
		}
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod {
					continue
				}
				if subdirs && ev.Op&(fsnotify.Create|fsnotify.Rename) != 0 && filepath.Dir(ev.Name) == dir {
					// Lstat: a link to a folder elsewhere is not watched.
					if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
						w.Add(ev.Name)
					}
				}
				poke(ch)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.log.Warn("folder watch error", "dir", dir, "err", err)
				poke(ch)
			}
		}
	}()
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
