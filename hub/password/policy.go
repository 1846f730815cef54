package password

import (
	"bufio"
	_ "embed"
	"errors"
	"strings"
	"sync"
	"unicode/utf8"
)

// Length limits (NIST SP 800-63B, OWASP ASVS 2.1.1–2.1.2): long enough to
// resist guessing, short enough that hashing a submitted password stays
// cheap. There are no composition rules: they push people to predictable
// patterns and do not add strength.
const (
	MinLength = 12
	MaxLength = 128
)

// The policy's refusals. Their messages are written for the person choosing
// the password.
var (
	ErrTooShort = errors.New("the password must be at least 12 characters; a few unrelated words make a strong one")
	ErrTooLong  = errors.New("the password must be at most 128 characters")
	ErrCommon   = errors.New("this password is too common and would be guessed quickly; choose another")
)

//go:embed common.txt
var commonList string

// common is the set of refused passwords, built on first use so that
// commands which never check a password do not pay for it.
var common = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 32768)
	sc := bufio.NewScanner(strings.NewReader(commonList))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})

// Check applies the password policy: 12 to 128 characters (counted as
// Unicode code points, so every script is treated alike), and not on the
// list of common passwords shipped with the binary, compared without regard
// to case.
func Check(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinLength:
		return ErrTooShort
	case n > MaxLength:
		return ErrTooLong
	}
	if IsCommon(pw) {
		return ErrCommon
	}
	return nil
}

// IsCommon reports whether pw is on the list of common passwords.
func IsCommon(pw string) bool {
	_, ok := common()[strings.ToLower(pw)]
	return ok
}
