package postgres

import "context"

// Terminate kills the other backends of this database that hold an
// advisory lock (what "SELECT pg_try_advisory_lock" names) or whose last
// statement starts with what, as a PostgreSQL restart or a lost network
// would, for cluster_test.go.
func (c *Cluster) Terminate(ctx context.Context, what string) (int64, error) {
	q := `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1 || '%'`
	if what == "SELECT pg_try_advisory_lock" {
		q = `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND pid <> pg_backend_pid() AND $1 <> ''`
	}
	var n int64
	err := c.pool.QueryRow(ctx, q, what).Scan(&n)
	return n, err
}
