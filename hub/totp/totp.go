// Package totp implements time-based one-time passwords (RFC 6238) the way
// authenticator apps expect them: HMAC-SHA-1, 6 digits, 30-second steps.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

const (
	// Digits is the length of a code.
	Digits = 6
	// Period is how long one code lasts.
	Period = 30 * time.Second
	// Skew is how many steps either side of the current one are accepted,
	// to allow for a phone whose clock is a little off and for the time it
	// takes to type the code.
	Skew = 1
	// secretLen is 160 bits, the key length RFC 4226 recommends for SHA-1.
	secretLen = 20
)

// b32 is the encoding authenticator apps read: RFC 4648 base32 without
// padding.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrSecret reports a secret that is not valid base32.
var ErrSecret = errors.New("totp: secret is not valid base32")

// Generate returns a new random secret, base32-encoded.
func Generate() (string, error) {
	key := make([]byte, secretLen)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return b32.EncodeToString(key), nil
}

// Step returns the time step t falls in.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Code returns the code for secret at time t.
func Code(secret string, t time.Time) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	return code(key, Step(t), Digits), nil
}

// Verify reports whether code is valid for secret at time t, within Skew
// steps, and returns the step it matched so the caller can refuse a second
// use of the same code. Spaces in code are ignored.
func Verify(secret, code string, t time.Time) (step int64, ok bool) {
	key, err := decodeSecret(secret)
	if err != nil {
		return 0, false
	}
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != Digits {
		return 0, false
	}
	now := Step(t)
	// Every candidate is compared, in constant time, so timing does not
	// reveal which step (if any) matched.
	for d := int64(-Skew); d <= Skew; d++ {
		if subtle.ConstantTimeCompare([]byte(codeFor(key, now+d)), []byte(code)) == 1 && !ok {
			step, ok = now+d, true
		}
	}
	return step, ok
}

func codeFor(key []byte, step int64) string { return code(key, step, Digits) }

// URI returns the otpauth:// URI that authenticator apps read from a QR
// code, labelled "issuer:account".
func URI(issuer, account, secret string) string {
	q := "secret=" + secret + "&issuer=" + url.PathEscape(issuer)
	return "otpauth://totp/" + url.PathEscape(issuer) + ":" + url.PathEscape(account) + "?" + q
}

func decodeSecret(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	key, err := b32.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(key) == 0 {
		return nil, ErrSecret
	}
	return key, nil
}

// code is HOTP (RFC 4226 §5.3) of key at counter step, with the given number
// of digits.
func code(key []byte, step int64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}
