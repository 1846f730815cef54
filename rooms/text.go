package rooms

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on free text, in characters. Each field that ends up in an event
// also has a byte budget on its encoded size (below).
const (
	MaxMessageLen      = 10000
	MaxPlanTextLen     = 20000
	MaxReasonLen       = 10000
	MaxAdviceLen       = 10000
	MaxFormTextLen     = 10000
	MaxWardLen         = 100
	MaxNameLen         = 200
	MaxContactPhoneLen = 40
	MaxRefLen          = 128
	// MaxEmailLen is the longest address SMTP can carry (RFC 5321 path
	// limit less the angle brackets).
	MaxEmailLen = 254
)

// Byte budgets on the JSON-encoded size (EncodedLen) of the text an event
// carries. A server frame is at most 64 KiB (wire.MaxFrame); the budgets
// leave room for the envelope, the author and the event's other fields,
// whatever characters the text is made of. A transition carries both a
// reason and, when managed remotely, advice: together they fit the same
// 48 KiB as a message.
const (
	MaxMessageBytes  = 48 << 10
	MaxPlanTextBytes = 48 << 10
	MaxReasonBytes   = 24 << 10
	MaxAdviceBytes   = 24 << 10
)

// EncodedLen returns the size in bytes of s encoded as a JSON string,
// quotes included, the way encoding/json encodes it with SetEscapeHTML(false):
// quote and backslash take 2 bytes, \b \f \n \r \t 2, other control
// characters, U+2028, U+2029 and each invalid byte 6, everything else its
// UTF-8 length.
func EncodedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6 // written as \ufffd
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// textRule is what one free-text field may hold. Every text field of the
// domain is checked by one, so the same characters are refused everywhere.
type textRule struct {
	// what names the field to a clinician: "plan text".
	what     string
	required bool
	// multiline allows tab, newline and carriage return (and the Unicode
	// line and paragraph separators).
	multiline bool
	maxChars  int
	// maxBytes bounds EncodedLen; zero for none beyond maxChars.
	maxBytes int
}

// The rules of the fields that are not checked next to their own command.
var (
	ruleReason       = textRule{what: "the reason", multiline: true, maxChars: MaxReasonLen, maxBytes: MaxReasonBytes}
	ruleMessage      = textRule{what: "the message", required: true, multiline: true, maxChars: MaxMessageLen, maxBytes: MaxMessageBytes}
	rulePlanText     = textRule{what: "plan text", multiline: true, maxChars: MaxPlanTextLen, maxBytes: MaxPlanTextBytes}
	ruleContactPhone = textRule{what: "contact phone", required: true, maxChars: MaxContactPhoneLen}
	ruleRef          = textRule{what: "ref", required: true, maxChars: MaxRefLen}
	// ruleKey covers short names chosen from a list (pathway, section): they
	// are refused by the list, but must be text before they reach a store.
	ruleKey = textRule{what: "the name", required: true, maxChars: 100}
)

// check returns an invalid error naming field when s breaks the rule.
func (r textRule) check(field, s string) error {
	if r.required && strings.TrimSpace(s) == "" {
		return Invalid(field, "%s is required", r.what)
	}
	if err := checkChars(field, r.what, s, r.multiline); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(s); n > r.maxChars {
		return Invalid(field, "%s is too long (at most %s characters)", r.what, thousands(r.maxChars))
	}
	if r.maxBytes > 0 && EncodedLen(s) > r.maxBytes {
		return Invalid(field, "%s is too long (at most %d KB once encoded)", r.what, r.maxBytes>>10)
	}
	return nil
}

// checkChars refuses invalid UTF-8 and the characters no text field may
// hold: C0 controls (tab, newline and carriage return allowed in multi-line
// text), DEL, C1 controls, and the bidirectional controls that make text
// read differently from how it is stored (Trojan Source, CVE-2021-42574).
// Postgres cannot store NUL at all.
func checkChars(field, what, s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return Invalid(field, "%s contains bytes that are not valid text (UTF-8)", what)
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
			if !multiline {
				return Invalid(field, "%s must be on one line, without tabs or line breaks", what)
			}
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return Invalid(field, "%s contains a control character (U+%04X), which is not allowed", what, r)
		case isBidiControl(r):
			return Invalid(field, "%s contains a hidden text-direction character (U+%04X), which is not allowed", what, r)
		}
	}
	return nil
}

// isCleanText reports whether s passes checkChars as single-line text: safe
// to store and to quote in an audit entry.
func isCleanText(s string) bool { return checkChars("", "", s, false) == nil }

func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') ||
		r == '\u200e' || r == '\u200f' || r == '\u061c'
}

// isInvisible reports characters that render as nothing: a name made only
// of them looks blank on every screen.
func isInvisible(r rune) bool {
	switch {
	case r == '\u00ad', r == '\u034f', r == '\u061c', r == '\u115f', r == '\u1160',
		r == '\u17b4', r == '\u17b5', r == '\u3164', r == '\ufeff', r == '\uffa0':
		return true
	case r >= '\u180b' && r <= '\u180f', r >= '\u200b' && r <= '\u200f',
		r >= '\u202a' && r <= '\u202e', r >= '\u2060' && r <= '\u206f',
		r >= '\ufe00' && r <= '\ufe0f', r >= 0x1d173 && r <= 0x1d17a,
		r >= 0xe0000 && r <= 0xe0fff:
		return true
	}
	return false
}

// checkName checks a person's name (a user's, a patient's): single-line
// text of at most MaxNameLen characters with at least one visible letter,
// so nobody appears in a room as a blank.
func checkName(field, what, s string) error {
	rule := textRule{what: what, required: true, maxChars: MaxNameLen}
	if err := rule.check(field, s); err != nil {
		return err
	}
	for _, r := range s {
		if unicode.IsLetter(r) && !isInvisible(r) {
			return nil
		}
	}
	return Invalid(field, "%s must contain at least one letter", what)
}

// CheckID returns an invalid error naming field unless id is one the
// platform could have issued: a UUID in NewID's form, 36 characters of
// lower-case hexadecimal in groups of 8-4-4-4-12. Anything else (a NUL, bytes
// that are not UTF-8) is refused before it reaches a store or an audit
// entry.
func CheckID(field, id string) error {
	if id == "" {
		return Invalid(field, "%s is required", field)
	}
	if !isID(id) {
		return Invalid(field, "%s is not a valid id (ids look like 1b4e28ba-2fa1-4d2b-883f-0016d3cca427)", field)
	}
	return nil
}

func isID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// CheckEmail returns an invalid error naming field unless s (already
// normalised by NormaliseEmail) is an email address: a local part, one @,
// and a domain of at least two dot-separated labels of letters, digits and
// inner hyphens; no spaces or control characters; at most MaxEmailLen bytes.
func CheckEmail(field, s string) error {
	const want = "an email address such as name@nhs.net"
	if s == "" {
		return Invalid(field, "an email address is required")
	}
	if err := checkChars(field, "the email address", s, false); err != nil {
		return err
	}
	if len(s) > MaxEmailLen {
		return Invalid(field, "the email address is too long (at most %d characters)", MaxEmailLen)
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return Invalid(field, "the email address cannot contain spaces")
	}
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !ok:
		return Invalid(field, "the email address needs an @: %s", want)
	case local == "":
		return Invalid(field, "the email address needs a name before the @: %s", want)
	case len(local) > 64:
		return Invalid(field, "the part of the email address before the @ is too long (at most 64 characters)")
	case strings.Contains(domain, "@"):
		return Invalid(field, "the email address can have only one @: %s", want)
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return Invalid(field, "the email address needs a domain with a dot after the @: %s", want)
	}
	for _, l := range labels {
		if !isDomainLabel(l) {
			return Invalid(field, "the domain of the email address is not valid: %s", want)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return Invalid(field, "the domain of the email address is not valid: %s", want)
	}
	return nil
}

// isDomainLabel reports a DNS label (RFC 1123; letters may be non-ASCII for
// internationalised domains): 1–63 bytes of letters, digits and hyphens, not
// starting or ending with a hyphen.
func isDomainLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// thousands writes a positive n with comma separators, as clinicians read
// numbers: 10,000.
func thousands(n int) string {
	digits := strconv.Itoa(n)
	var b strings.Builder
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}
