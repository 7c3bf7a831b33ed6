// Package update runs the agent's update cycle: it turns "these advisories
// apply" into installed, verified packages and never leaves a device worse off
// than it found it.
//
// Threat model. The repositories, the mirror, the network and the disk the
// packages wait on are not trusted; the pinned OpenPGP keys (the
// distribution's RPM-GPG-KEY-* files named by --gpgkey) and the rpm database
// are. Every package, the new versions and the rollback set alike, is
// downloaded, checked against the size and SHA-256 its repository's primary.xml
// gives, and verified by agent/internal/verify against the pinned keys and the
// planned NEVRA before anything is installed; any failure stops the whole
// cycle with nothing installed. No package older than or equal to the
// installed one is ever installed, except the recorded previous version in a
// rollback. rpm itself runs with _pkgverify_level signature and only the pinned
// keys imported, so a file swapped after the check is still refused. The same
// keys check a repository's repodata/repomd.xml.asc when it has one (and must,
// when its .repo file sets repo_gpgcheck); keys named by a .repo file are
// pinned only when they are local files (file://), never fetched.
//
// The cycle is a persisted state machine (see Phase): the journal in the state
// dir is written, by temp file, fsync and rename, before every step. A cycle
// cut short (kill -9, a power cut) is resumed on the next start: the journal
// says which step may have been half done, the rpm database says what really
// happened, and the step is finished or undone and the truth recorded. Only
// one cycle runs at a time (a flock on the state dir's lock file). An
// advisory whose cycle fails MaxAttempts times is set aside with its reason
// instead of being retried forever.
package update
