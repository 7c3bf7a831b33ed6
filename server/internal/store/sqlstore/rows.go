package sqlstore

import (
	"context"
	"strings"
)

// Values and rows as both SQL dialects take them: booleans as 0/1,
// IN lists, multi-row inserts.

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// inserter writes rows with multi-row INSERTs, a hundred rows to a
// statement, ignoring rows already there.
type inserter struct {
	ctx    context.Context
	c      Conn
	prefix string
	cols   int
	args   []any
}

const insertBatch = 100

func newInserter(ctx context.Context, c Conn, prefix string, cols int) *inserter {
	return &inserter{ctx: ctx, c: c, prefix: prefix, cols: cols, args: make([]any, 0, insertBatch*cols)}
}

func (in *inserter) add(row ...any) error {
	in.args = append(in.args, row...)
	if len(in.args) == insertBatch*in.cols {
		return in.flush()
	}
	return nil
}

func (in *inserter) flush() error {
	if len(in.args) == 0 {
		return nil
	}
	row := "(?" + strings.Repeat(", ?", in.cols-1) + ")"
	q := in.prefix + row + strings.Repeat(", "+row, len(in.args)/in.cols-1) + ` ON CONFLICT DO NOTHING`
	_, err := in.c.Exec(in.ctx, q, in.args...)
	in.args = in.args[:0]
	return err
}

// inClause returns " AND col IN (?, ...)" and its arguments, or nothing
// when vals is nil.
func inClause(col string, vals []string) (string, []any) {
	if vals == nil {
		return "", nil
	}
	if len(vals) == 0 {
		return " AND 1 = 0", nil
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return " AND " + col + " IN (?" + strings.Repeat(", ?", len(vals)-1) + ")", args
}
