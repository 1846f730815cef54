package postgres

// MigrationCount counts the embedded migrations, so tests compare
// schema_migrations with the files rather than a number kept by hand.
func MigrationCount() (int, error) {
	ms, err := migrations()
	return len(ms), err
}
