package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"patientpass/rooms"
)

// txConn is the connection of one InTx transaction. It saves round trips,
// each of which costs CPU on both sides (system calls, wake-ups) and time
// under the row locks the transaction holds:
//
//   - BEGIN is not sent on its own but ahead of the transaction's first
//     statement, in the same batch;
//   - writes whose only answer is an error (queueWrite) are held back and
//     sent, in the order they were made, ahead of the next statement, in the
//     same batch as it, or ahead of COMMIT. COMMIT rides in their batch
//     unless one of them checks the rows it changed: Postgres aborts the
//     transaction after an error of its own, so COMMIT then does nothing,
//     but it would commit a write that ran and changed no row;
//   - writes to tables the transaction never reads back (queueDeferred: the
//     audit trail) wait for COMMIT itself, and go in the order of their key
//     (an audit chain), stably. A transaction therefore takes the locks
//     they need (a chain's head row) last, all in one batch and in one
//     order, so two transactions that each append to several chains, such
//     as two groups (see Store.InTxGroup), cannot deadlock over them.
//
// Every statement of the transaction, tx's own and those of the reader
// embedded in it, goes through txConn's querier methods, and each of them
// sends BEGIN and the pending writes first: a read can never overtake a
// write the transaction has made, nor run outside the transaction.
//
// A txConn is used by one goroutine, the one running InTx's fn.
type txConn struct {
	conn *pgx.Conn
	// begun is set once BEGIN has been sent.
	begun bool
	// pending are the writes not yet sent, in the order they were made.
	pending []pendingWrite
	// merge is set for a group's transaction (Store.InTxGroup): the
	// pending rows of one kind go as one statement (see rowKind).
	merge bool
	// pendingChecked is set when a pending write checks the rows it
	// changed, so COMMIT must wait for its answer.
	pendingChecked bool
	// deferred are the writes held back for COMMIT, each with its key.
	deferred []deferredWrite
	// queued counts the writes ever added to pending, and sent those of
	// them sent; direct counts the statements tx's own methods sent at
	// once (writer), all taken to write. A group's undo compares them
	// with a mark.
	queued, sent, direct int
	// err is the failure of BEGIN or of a pending write. It fails the
	// transaction: every later statement, and the commit, report it.
	err error
	// closed is set when InTx has released conn.
	closed bool
}

var _ querier = (*txConn)(nil)

const beginSQL = "BEGIN ISOLATION LEVEL READ COMMITTED"

// pendingWrite is a write not yet sent: a statement of its own, or a row of
// a kind that a group merges with the others of its kind.
type pendingWrite struct {
	q *pgx.QueuedQuery // the statement of its own; nil for a row
	// kind, args and done are the row's: its kind, its arguments for
	// kind.one and the check of its result.
	kind *rowKind
	args []any
	done func(pgconn.CommandTag, error) error
}

// rowKind is a kind of row a transaction writes many of, such as an event.
// one writes one row from its arguments; many writes several in one
// statement, from each row's arguments for one. A group sends the rows of a
// kind together where the first of them was queued: nothing in between may
// depend on their order, which holds for rows inserted into tables nothing
// else in the transaction writes, and for updates of referrals the
// transaction has locked (the last of each referral's updates wins).
type rowKind struct {
	one  string
	many func(rows [][]any) (sql string, args []any)
}

// queueWrite defers the statement sql to the next round trip. done is
// called with its command tag and error once it has been sent, and returns
// the error the write reports, the error the method that queued it would
// have returned had it been sent at once. checksRows says that done can
// fail a statement that succeeded, because of the rows it changed.
func (c *txConn) queueWrite(sql string, args []any, checksRows bool, done func(pgconn.CommandTag, error) error) {
	q := writeStatement(sql, args, done)
	c.pending = append(c.pending, pendingWrite{q: q})
	c.queued++
	c.pendingChecked = c.pendingChecked || checksRows
}

// writeStatement is the statement sql with args, whose result done checks
// once it has been sent.
func writeStatement(sql string, args []any, done func(pgconn.CommandTag, error) error) *pgx.QueuedQuery {
	q := &pgx.QueuedQuery{SQL: sql, Arguments: args}
	q.Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if notSent(err) {
			return err
		}
		return done(tag, err)
	}
	return q
}

// queueRow defers a row of kind to the next round trip, as queueWrite does
// a statement; in a group it goes with the other rows of its kind. done is
// as for queueWrite; a merged statement's result is given to the done of
// each of its rows, and the first error they return is the write's. A row
// cannot check the rows it changed.
func (c *txConn) queueRow(kind *rowKind, args []any, done func(pgconn.CommandTag, error) error) {
	c.pending = append(c.pending, pendingWrite{kind: kind, args: args, done: done})
	c.queued++
}

// statements turns the pending writes into the statements that send them:
// one per write, or, in a group, one per kind of row, where its first row
// was.
func (c *txConn) statements() []*pgx.QueuedQuery {
	qs := make([]*pgx.QueuedQuery, 0, len(c.pending))
	merged := map[*rowKind]int{} // kind → its rows' index in rows
	var (
		rows  [][]pendingWrite
		slots []int // where in qs each kind's statement goes
	)
	for _, w := range c.pending {
		switch {
		case w.q != nil:
			qs = append(qs, w.q)
		case !c.merge:
			qs = append(qs, rowStatement(w.kind.one, w.args, []pendingWrite{w}))
		default:
			i, ok := merged[w.kind]
			if !ok {
				i = len(rows)
				merged[w.kind] = i
				rows = append(rows, nil)
				slots = append(slots, len(qs))
				qs = append(qs, nil) // filled in below
			}
			rows[i] = append(rows[i], w)
		}
	}
	for i, rs := range rows {
		sql, args := rs[0].kind.one, rs[0].args
		if len(rs) > 1 {
			all := make([][]any, len(rs))
			for j, r := range rs {
				all[j] = r.args
			}
			sql, args = rs[0].kind.many(all)
		}
		qs[slots[i]] = rowStatement(sql, args, rs)
	}
	return qs
}

// rowStatement is the statement sql with args that writes rows, whose
// result it gives to each of them.
func rowStatement(sql string, args []any, rows []pendingWrite) *pgx.QueuedQuery {
	return writeStatement(sql, args, func(tag pgconn.CommandTag, err error) error {
		var first error
		for _, r := range rows {
			if e := r.done(tag, err); e != nil && first == nil {
				first = e
			}
		}
		return first
	})
}

// deferredWrite is a write held back for COMMIT.
type deferredWrite struct {
	key int
	q   *pgx.QueuedQuery
}

// queueDeferred holds the statement sql back for COMMIT, where the deferred
// writes go in the order of their keys, stably: no statement of the
// transaction may read what it writes. done is as for queueWrite; such a
// write cannot check the rows it changed.
func (c *txConn) queueDeferred(key int, sql string, args []any, done func(pgconn.CommandTag, error) error) {
	q := writeStatement(sql, args, done)
	c.deferred = append(c.deferred, deferredWrite{key: key, q: q})
}

// mark is where a member of a group began in its transaction (see undo).
type mark struct{ queued, direct, deferred int }

func (c *txConn) mark() mark {
	return mark{queued: c.queued, direct: c.direct, deferred: len(c.deferred)}
}

// undo takes back everything queued since m, and reports whether that is
// all there is to take back: nothing failed in the transaction, and no
// write made since m has reached the server, neither queued nor sent at
// once. Reads may have been sent since m (they change nothing), and the
// writes queued before m may have gone with them. When undo reports false
// the transaction must roll back: a savepoint would cost every member of a
// group two statements and a subtransaction, where a failure after a write
// is a rare one (a constraint, a lost connection).
func (c *txConn) undo(m mark) bool {
	if c.err != nil || c.direct != m.direct || c.sent > m.queued {
		return false
	}
	keep := len(c.pending) - (c.queued - m.queued)
	clear(c.pending[keep:])
	c.pending = c.pending[:keep]
	c.queued = m.queued
	clear(c.deferred[m.deferred:])
	c.deferred = c.deferred[:m.deferred]
	// pendingChecked may stay set for a write taken back: COMMIT then waits
	// for the writes' answers, which costs a round trip and nothing else.
	return true
}

// notSent reports whether err is the failure of a whole batch that could
// not be prepared, and was not sent. Its error names the statement at
// fault, which need not be the one it is reported for.
func notSent(err error) bool {
	var unsent pgx.ErrPreprocessingBatch
	return errors.As(err, &unsent)
}

// usable reports why no statement may be sent, if one may not.
func (c *txConn) usable() error {
	switch {
	case c.closed:
		return pgx.ErrTxClosed
	case c.err != nil:
		return c.err
	case c.begun && c.conn.PgConn().TxStatus() == 'I':
		// A BEGIN that was not run leaves its error in err, so this
		// cannot happen; were it to, a statement sent now would run, and
		// commit, on its own.
		return errors.New("the transaction is no longer open")
	}
	return nil
}

// caughtUp reports whether BEGIN and every write have been sent, so a
// statement can go to the connection directly.
func (c *txConn) caughtUp() bool { return c.begun && len(c.pending) == 0 }

// send sends BEGIN when it has not been sent, the pending writes, the
// deferred ones when commit is set, and then the statements of b (nil for
// none) in one batch, and reads the results of BEGIN and of the writes.
// The results returned are at b's first statement; they must be closed.
// The error is the first of BEGIN or of a write, which fails the
// transaction.
func (c *txConn) send(ctx context.Context, b *pgx.Batch, commit bool) (pgx.BatchResults, error) {
	var stmts []*pgx.QueuedQuery
	if b != nil {
		stmts = b.QueuedQueries
	}
	qs := make([]*pgx.QueuedQuery, 0, 1+len(c.pending)+len(c.deferred)+len(stmts))
	if !c.begun {
		begin := &pgx.QueuedQuery{SQL: beginSQL}
		begin.Fn = beginResult
		qs = append(qs, begin)
	}
	qs = append(qs, c.statements()...)
	if commit {
		slices.SortStableFunc(c.deferred, func(a, b deferredWrite) int { return cmp.Compare(a.key, b.key) })
		for _, d := range c.deferred {
			qs = append(qs, d.q)
		}
		c.deferred = nil
	}
	ahead := len(qs)
	qs = append(qs, stmts...)
	c.sent += len(c.pending)
	c.begun, c.pending, c.pendingChecked = true, nil, false
	br := c.conn.SendBatch(ctx, &pgx.Batch{QueuedQueries: qs})
	for _, q := range qs[:ahead] {
		if err := q.Fn(br); err != nil {
			// The writes are no longer pending, whether or not they ran:
			// the transaction must not commit. Postgres has aborted it
			// after an error of its own, but not after a write that found
			// no row, nor when the batch was never sent.
			c.err = err
			return br, err
		}
	}
	return br, nil
}

// beginResult reads the result of BEGIN from br.
func beginResult(br pgx.BatchResults) error {
	_, err := br.Exec()
	if err != nil && !notSent(err) {
		err = fmt.Errorf("begin transaction: %w", err)
	}
	return err
}

// flush sends BEGIN, if it has not been sent, and the pending writes.
func (c *txConn) flush(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	if c.caughtUp() {
		return nil
	}
	br, err := c.send(ctx, nil, false)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// Exec runs sql in the same round trip as BEGIN and the pending writes.
func (c *txConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := c.usable(); err != nil {
		return pgconn.CommandTag{}, err
	}
	if c.caughtUp() {
		return c.conn.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br, err := c.send(ctx, b, false)
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// QueryRow runs sql in the same round trip as BEGIN and the pending writes.
// As with pgx, the returned row's Scan must be called: it ends the round
// trip.
func (c *txConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := c.usable(); err != nil {
		return errRow{err}
	}
	if c.caughtUp() {
		return c.conn.QueryRow(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br, err := c.send(ctx, b, false)
	return batchRow{br: br, err: err}
}

// SendBatch sends b in the same round trip as BEGIN and the pending writes.
func (c *txConn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := c.usable(); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	if c.caughtUp() {
		return c.conn.SendBatch(ctx, b)
	}
	br, err := c.send(ctx, b, false)
	if err != nil {
		return failedBatch{BatchResults: pgx.FailedBatchResults(b, err), sent: br}
	}
	return br
}

// Query runs sql after sending BEGIN and the pending writes. It takes a
// round trip of its own to send those: rows, unlike a row or a batch, have
// no end where the batch's own error could be reported in turn.
func (c *txConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := c.flush(ctx); err != nil {
		return nil, err
	}
	return c.conn.Query(ctx, sql, args...)
}

// commit sends the pending writes and COMMIT: in one round trip, unless a
// pending write checks the rows it changed; then COMMIT goes once the writes
// are known to have succeeded. A transaction that never sent a statement
// has nothing to commit.
func (c *txConn) commit(ctx context.Context) error {
	if !c.begun && len(c.pending) == 0 && len(c.deferred) == 0 {
		return nil
	}
	if c.pendingChecked {
		if err := c.flush(ctx); err != nil {
			return err
		}
	}
	if err := c.usable(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue("COMMIT")
	br, err := c.send(ctx, b, true)
	if err != nil {
		// A write failed, and COMMIT did not run; the error is the
		// write's, as flush would report it. Unless the server said so,
		// though, the connection may have failed with COMMIT on its way.
		_ = br.Close()
		return uncertain(err)
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() == "ROLLBACK" {
		err = pgx.ErrTxCommitRollback
	}
	if err != nil {
		return uncertain(fmt.Errorf("commit transaction: %w", mapErr(err, "commit")))
	}
	return nil
}

// uncertain returns err, the failure of a batch that carried COMMIT, wrapped
// in rooms.ErrCommitUncertain unless the server answered it (an error of
// its own, a write it found failing, a commit it rolled back) or the batch
// was never sent: only then is it known that nothing committed.
func uncertain(err error) error {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe), notSent(err), errors.Is(err, pgx.ErrTxCommitRollback),
		errors.Is(err, rooms.ErrDuplicate), errors.Is(err, rooms.ErrNotFound):
		return err
	}
	return fmt.Errorf("%w: %w", rooms.ErrCommitUncertain, err)
}

// rollback ends the transaction after a failure, when one was begun. It
// runs even when ctx is what failed, but bounded, so a dead server cannot
// hold the caller; when it fails the connection is closed, so the pool
// discards it rather than hand out a connection inside a transaction.
func (c *txConn) rollback(ctx context.Context) {
	pc := c.conn.PgConn()
	if !c.begun || pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if _, err := c.conn.Exec(rctx, "ROLLBACK"); err != nil {
		_ = c.conn.Close(rctx)
	}
}

// batchRow is the row of the last statement of a batch. Scan reports the
// failure of BEGIN or of a pending write sent ahead of it before its own,
// and closes the batch.
type batchRow struct {
	br  pgx.BatchResults
	err error
}

func (r batchRow) Scan(dest ...any) error {
	err := r.err
	if err == nil {
		err = r.br.QueryRow().Scan(dest...)
	}
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// errRow is a row that was never read.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// failedBatch is the results of a batch sent after BEGIN or a pending write
// that failed: every read reports that failure, and Close reads what was
// sent and reports it too.
type failedBatch struct {
	pgx.BatchResults // pgx.FailedBatchResults of the failure
	sent             pgx.BatchResults
}

func (b failedBatch) Close() error {
	_ = b.sent.Close()
	return b.BatchResults.Close()
}
