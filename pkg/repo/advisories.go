package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// EachAdvisory streams the advisories of the repository's updateinfo to fn,
// one at a time in file order, so that a large updateinfo is never held in
// memory whole; a repository without updateinfo has none. An error fn
// returns stops the stream and comes back as it is; an error reading the
// updateinfo (a download, a checksum, the XML) comes back wrapped with the
// repository's name.
func (r *Repo) EachAdvisory(ctx context.Context, fn func(*advisory.Advisory) error) error {
	ui, err := r.Updateinfo(ctx)
	if errors.Is(err, ErrNoUpdateinfo) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read updateinfo of %s: %w", r, err)
	}
	for {
		a, err := ui.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			ui.Close()
			return fmt.Errorf("read updateinfo of %s: %w", r, err)
		}
		if err := fn(a); err != nil {
			ui.Close()
			return err
		}
	}
	if err := ui.Close(); err != nil {
		return fmt.Errorf("read updateinfo of %s: %w", r, err)
	}
	return nil
}
