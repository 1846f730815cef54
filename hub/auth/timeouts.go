package auth

import "time"

// Session lifetimes (OWASP ASVS level 2): a session ends after IdleTimeout
// without activity, and AbsoluteTimeout after login whatever the activity.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
)
