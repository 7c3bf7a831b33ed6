package pgtest

import (
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// Restart stops the server with a fast shutdown (SIGINT: every session is
// cut, as an admin's "systemctl restart postgresql" does) and starts it
// again on the same port and data, so clients' URLs stay good. It returns
// once the server accepts connections again.
func (s *Server) Restart() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return fmt.Errorf("pgtest: restart: not running")
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		s.kill()
	}
	bin, err := BinDir()
	if err != nil {
		return err
	}
	cred, err := credential(s.dir)
	if err != nil {
		return err
	}
	if err := s.start(bin, filepath.Join(s.dir, "data"), cred); err != nil {
		return fmt.Errorf("pgtest: restart: %w", err)
	}
	return nil
}
