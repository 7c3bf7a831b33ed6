package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// decode reads one JSON value of at most limit bytes into v, strictly. On
// failure it answers 413 for an oversized body or 400 naming the field or
// offset at fault, and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body: unexpected data after the JSON value at offset %d", dec.InputOffset()), "")
			return false
		}
		return true
	}
	status, msg, field := describeJSONError(err)
	writeError(w, status, msg, field)
	return false
}

// describeJSONError turns a decoding error into a status, a message that
// names the field or the byte offset, and the field.
func describeJSONError(err error) (status int, msg, field string) {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit), ""
	case errors.Is(err, errBodyTooSlow):
		return http.StatusRequestTimeout, "body: " + strings.TrimPrefix(err.Error(), "api: "), ""
	case errors.As(err, &syn):
		return http.StatusBadRequest, fmt.Sprintf("malformed JSON at offset %d: %v", syn.Offset, syn), ""
	case errors.As(err, &typ):
		f := typ.Field
		if f == "" {
			f = "body"
		}
		return http.StatusBadRequest, fmt.Sprintf("%s: JSON %s where %s was expected (offset %d)", f, typ.Value, typ.Type, typ.Offset), f
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "body: empty, a JSON object was expected", ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "body: JSON ends early", ""
	}
	// encoding/json words unknown fields `json: unknown field "x"`, and
	// errors from a type's UnmarshalJSON or UnmarshalText as they come.
	m := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(m, "unknown field "); ok {
		f = strings.Trim(f, `"`)
		return http.StatusBadRequest, fmt.Sprintf("%s: unknown field", f), f
	}
	return http.StatusBadRequest, "body: " + m, ""
}
