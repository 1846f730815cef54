// Package pgtest gives each test its own Postgres schema. It is imported
// only by tests.
//
// The database comes from PATIENTPASS_TEST_DATABASE_URL (default
// postgres://root@127.0.0.1:5432/test?sslmode=disable). When Postgres does
// not answer, tests are skipped, unless CI is set: then Postgres must be
// running and the test fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the database used when PATIENTPASS_TEST_DATABASE_URL is
// unset.
const DefaultURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

// connectTimeout bounds how long a test waits for a Postgres that is not
// there before skipping.
const connectTimeout = 5 * time.Second

// baseURL returns the test database's URL.
func baseURL() string {
	if u := os.Getenv("PATIENTPASS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a fresh, empty schema, drops it with everything in it when the
// test ends, and returns a connection URL whose search_path selects it.
func URL(t testing.TB) string {
	t.Helper()
	base := baseURL()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: PATIENTPASS_TEST_DATABASE_URL must be a postgres:// URL")
	}
	schema := "t_" + randomHex(t, 8)

	conn := connect(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Admin connects to url (normally one returned by URL) as the test
// database's user, bypassing the application, and closes the pool when the
// test ends. With the default superuser it can do what the application
// must not, such as SET session_replication_role = replica.
func Admin(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		unavailable(t, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// connect opens one connection to url, skipping or failing the test when
// Postgres does not answer.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		unavailable(t, err)
	}
	return conn
}

// unavailable ends a test that needs a Postgres which did not answer.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI=%s: Postgres must be running (set PATIENTPASS_TEST_DATABASE_URL): %v", os.Getenv("CI"), err)
	}
	t.Skipf("Postgres is not available (set PATIENTPASS_TEST_DATABASE_URL, or set CI to make this fail): %v", err)
}

func dropSchema(t testing.TB, base, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("pgtest: connect to drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: random schema name: %v", err)
	}
	return hex.EncodeToString(b)
}
