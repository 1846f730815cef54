package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"patientpass/rooms"
)

// maxBody bounds a JSON request body; the largest legitimate one is a
// referral with its form and free text.
const maxBody = 256 << 10

// errorBody is the error shape of SPEC §5.
type errorBody struct {
	Error struct {
		Code    rooms.Code `json:"code"`
		Message string     `json:"message"`
		Field   string     `json:"field,omitempty"`
	} `json:"error"`
	// Current is the plan section as it stands, on a stale plan edit.
	Current *currentSection `json:"current,omitempty"`
	// RetryAfter is the number of seconds to wait, on rate_limited.
	RetryAfter int `json:"retry_after,omitempty"`
}

type currentSection struct {
	Revision int64  `json:"revision"`
	Text     string `json:"text"`
}

// statusOf maps an error code to its HTTP status.
func statusOf(code rooms.Code) int {
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

// fail writes err as an API error. Domain errors carry their own message;
// anything else is logged here, once, and answered with a message that
// leaks no internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var de *rooms.Error
	if !errors.As(err, &de) {
		if errors.Is(err, rooms.ErrNotFound) {
			de = rooms.NotFound("resource")
		} else {
			s.log.Error().Err(err).Str("method", r.Method).Str("route", r.Pattern).Msg("request failed")
			de = &rooms.Error{Code: rooms.CodeInternal, Message: "something went wrong on our side; please try again, and call the specialist team if it is urgent"}
		}
	}
	writeError(w, de)
}

// writeError writes a domain error.
func writeError(w http.ResponseWriter, de *rooms.Error) {
	var body errorBody
	body.Error.Code = de.Code
	body.Error.Message = de.Message
	body.Error.Field = de.Field
	if de.Current != nil {
		body.Current = &currentSection{Revision: de.Current.Revision, Text: de.Current.Text}
	}
	writeJSON(w, statusOf(de.Code), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads one JSON object into dst strictly: unknown fields, trailing
// data, wrong types and oversized bodies are invalid errors naming the field
// where one can be named.
func decode(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return rooms.Invalid("", "send the request as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rooms.Invalid("", "the request body must be one JSON object")
	}
	return nil
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
		return rooms.Invalid("", "the request body is too large (at most %d KiB)", maxBody>>10)
	case errors.Is(err, io.EOF):
		return rooms.Invalid("", "the request body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return rooms.Invalid(name, "%q is not a field of this request", name)
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
