package update

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable that makes the agent kill itself
// (SIGKILL, no deferred code, no flush) right after the journal records the
// named phase ("downloading", "applying", ...) or, for "applied", right after
// rpm's transaction returned and before the journal records it. It is the
// fake for a power cut, which cannot run in a test: the integration tests set
// it to prove that the next run finds the journal, looks at the rpm database,
// and finishes or undoes the step. Nothing sets it in production.
const CrashEnv = "RPMFLEET_TEST_CRASH_AT"

func crashPoint(name string) {
	if v := os.Getenv(CrashEnv); v != "" && v == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
