// Package httpjson is how every HTTP handler of Patient Pass speaks JSON:
// strict request decoding, responses without HTML escaping, and the error
// shape of SPEC §5 with one mapping from error codes to HTTP statuses. It
// is a leaf, so the packages that serve routes (auth, api) and the server
// that composes them share it without importing each other.
package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"patientpass/rooms"
)

// MaxBody bounds a JSON request body; the largest legitimate one is a
// referral with its form and free text.
const MaxBody = 256 << 10

// ErrorBody is the error shape of SPEC §5.
type ErrorBody struct {
	Error struct {
		Code    rooms.Code `json:"code"`
		Message string     `json:"message"`
		Field   string     `json:"field,omitempty"`
	} `json:"error"`
	// Current is the plan section as it stands, on a stale plan edit.
	Current *CurrentSection `json:"current,omitempty"`
	// RetryAfter is the number of seconds to wait, on rate_limited and
	// unavailable.
	RetryAfter int `json:"retry_after,omitempty"`
}

// CurrentSection is a plan section as it stands, sent with a conflict.
type CurrentSection struct {
	Revision int64  `json:"revision"`
	Text     string `json:"text"`
}

// StatusOf maps an error code to its HTTP status.
func StatusOf(code rooms.Code) int {
	switch code {
	case rooms.CodeInvalid:
		return http.StatusBadRequest
	case rooms.CodeUnauthenticated:
		return http.StatusUnauthorized
	case rooms.CodeForbidden:
		return http.StatusForbidden
	case rooms.CodeNotFound:
		return http.StatusNotFound
	case rooms.CodeConflict:
		return http.StatusConflict
	case rooms.CodeRateLimited:
		return http.StatusTooManyRequests
	case rooms.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// internalMessage is what a client is told of a failure of ours.
const internalMessage = "something went wrong on our side; please try again, and call the specialist team if it is urgent"

// Fail writes err as an API error. Domain errors carry their own message;
// anything else is logged here, once, with the request's logger, and
// answered with a message that leaks no internals.
func Fail(w http.ResponseWriter, r *http.Request, err error) {
	var de *rooms.Error
	if !errors.As(err, &de) {
		if errors.Is(err, rooms.ErrNotFound) {
			de = rooms.NotFound("resource")
		} else {
			zerolog.Ctx(r.Context()).Error().Err(err).Str("method", r.Method).Str("route", r.Pattern).Msg("request failed")
			de = &rooms.Error{Code: rooms.CodeInternal, Message: internalMessage}
		}
	}
	Error(w, de)
}

// Error writes a domain error.
func Error(w http.ResponseWriter, de *rooms.Error) {
	Write(w, StatusOf(de.Code), Body(de))
}

// Body is the error body of de.
func Body(de *rooms.Error) ErrorBody {
	var body ErrorBody
	body.Error.Code = de.Code
	body.Error.Message = de.Message
	body.Error.Field = de.Field
	if de.Current != nil {
		body.Current = &CurrentSection{Revision: de.Current.Revision, Text: de.Current.Text}
	}
	return body
}

// RetryLater answers code (rate_limited or unavailable) with message and
// how long to wait, in whole seconds rounded up, as Retry-After and in the
// body.
func RetryLater(w http.ResponseWriter, code rooms.Code, wait int, message string) {
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	var body ErrorBody
	body.Error.Code = code
	body.Error.Message = message
	body.RetryAfter = wait
	Write(w, StatusOf(code), body)
}

// Write writes v as JSON with status. HTML is not escaped: responses are
// application/json with nosniff, never HTML, and escaping would make text
// of '<' and '&' six times its size.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Decode reads one JSON object into dst strictly: the content type must be
// JSON, and unknown fields, trailing data, wrong types, oversized bodies and
// strings that are not text (invalid UTF-8, NUL) are invalid errors naming
// the field where one can be named.
func Decode(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return rooms.Invalid("", "send the request as application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return decodeError(err)
	}
	if field, bad := notText(body); bad {
		return rooms.Invalid(field, "%s contains characters that are not text", fieldLabel(field))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rooms.Invalid("", "the request body must be one JSON object")
	}
	return nil
}

// isJSON reports whether a Content-Type is JSON: application/json, with at
// most a UTF-8 charset. A prefix match would take application/jsonp or
// application/json-seq.
func isJSON(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// notText finds the first string (or key) of a JSON body that is not text:
// one that holds NUL, or invalid UTF-8 (which encoding/json would silently
// turn into U+FFFD). It names the string by its path, as "patient.name".
// The common case, a clean body, costs one scan of the bytes.
func notText(body []byte) (string, bool) {
	invalidUTF8 := !utf8.Valid(body)
	if !invalidUTF8 && !bytes.Contains(body, []byte(`\u0000`)) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	type level struct {
		object bool
		key    string
		index  int
		expect bool // in an object, the next string is a key
	}
	var stack []level
	path := func(last string) string {
		var parts []string
		for _, l := range stack {
			if l.object {
				if l.key != "" {
					parts = append(parts, l.key)
				}
			} else {
				parts = append(parts, strconv.Itoa(l.index))
			}
		}
		if last != "" {
			parts = append(parts, last)
		}
		return strings.Join(parts, ".")
	}
	// bad judges a string token by its decoded value (NUL) and by its raw
	// bytes (invalid UTF-8, which decoding hides behind U+FFFD, a character
	// a clean string may hold too).
	var raw []byte
	bad := func(s string) bool {
		return strings.ContainsRune(s, 0) || (invalidUTF8 && !utf8.Valid(raw))
	}
	// after a value, an array advances and an object expects a key.
	after := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].expect = true
			} else {
				stack[n-1].index++
			}
		}
	}
	for {
		from := dec.InputOffset()
		tok, err := dec.Token()
		raw = body[from:dec.InputOffset()]
		if err != nil {
			// Not JSON: the decoder proper says so. Text errors outside any
			// string are not possible in valid JSON.
			return "", invalidUTF8
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, level{object: true, expect: true})
			case '[':
				stack = append(stack, level{})
			default:
				stack = stack[:len(stack)-1]
				after()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expect {
				if bad(v) {
					return path(printableKey(v)), true
				}
				stack[n-1].key, stack[n-1].expect = printableKey(v), false
				continue
			}
			if bad(v) {
				return path(""), true
			}
			after()
		default:
			after()
		}
	}
}

// printableKey is a key fit to be named in an error: text, at most 64 bytes.
func printableKey(k string) string {
	k = strings.Map(func(r rune) rune {
		if r < 0x20 || r == utf8.RuneError || r == 0x7f {
			return -1
		}
		return r
	}, k)
	if len(k) > 64 {
		k = strings.ToValidUTF8(k[:64], "")
	}
	return k
}

func decodeError(err error) error {
	var (
		typeErr *json.UnmarshalTypeError
		syntax  *json.SyntaxError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		return rooms.Invalid(field, "%s must be %s", fieldLabel(field), jsonKind(typeErr.Type.Kind().String()))
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return rooms.Invalid("", "the request body is not valid JSON")
	case errors.As(err, &tooBig):
		return rooms.Invalid("", "the request body is too large (at most %d KiB)", MaxBody>>10)
	case errors.Is(err, io.EOF):
		return rooms.Invalid("", "the request body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return rooms.Invalid(printableKey(name), "%q is not a field of this request", printableKey(name))
	}
	return rooms.Invalid("", "the request body could not be read")
}

func fieldLabel(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "text"
	case "bool":
		return "true or false"
	case "int", "int64", "int32", "float64", "uint", "uint64":
		return "a number"
	case "map", "struct":
		return "an object"
	case "slice":
		return "a list"
	}
	return fmt.Sprintf("of type %s", kind)
}

// ClientAddr is the address of the client as the connection shows it.
// Forwarded headers are not trusted: anyone can send them.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Printable returns at most n bytes of s as valid UTF-8 without control
// characters, for an audit detail or a log field: headers are arbitrary
// bytes, and Postgres refuses invalid UTF-8 and NUL in text.
func Printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
