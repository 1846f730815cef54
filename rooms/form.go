package rooms

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// ValidateForm checks a referral form against the pathway's fields: unknown
// keys, required fields, types, options and bounds. The first problem found
// is returned as an invalid error naming "form.<key>"; fields are checked in
// the order the pathway lists them so the error is stable.
func (p Pathway) ValidateForm(form map[string]any) error {
	known := make(map[string]bool, len(p.Form))
	for _, f := range p.Form {
		known[f.Key] = true
	}
	var unknown []string
	for k := range form {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		if !isCleanText(unknown[0]) {
			return Invalid("form", "the form has a field whose name is not text")
		}
		return Invalid("form."+unknown[0], "%q is not a field of the %s form", unknown[0], p.Name)
	}
	for _, f := range p.Form {
		field := "form." + f.Key
		v, present := form[f.Key]
		if present && v == nil {
			present = false
		}
		if s, ok := v.(string); ok && s == "" {
			present = false
		}
		if !present {
			if f.Required {
				return Invalid(field, "%s is required", f.Label)
			}
			for _, other := range f.RequiredWhenAny {
				if b, _ := form[other].(bool); b {
					return Invalid(field, "%s is required when a neurological deficit is present", f.Label)
				}
			}
			continue
		}
		if err := f.check(field, v); err != nil {
			return err
		}
	}
	return nil
}

func (f FormField) check(field string, v any) error {
	switch f.Type {
	case FieldText:
		s, ok := v.(string)
		if !ok {
			return Invalid(field, "%s must be text", f.Label)
		}
		rule := textRule{what: f.Label, multiline: true, maxChars: MaxFormTextLen}
		if err := rule.check(field, s); err != nil {
			return err
		}
	case FieldBool:
		if _, ok := v.(bool); !ok {
			return Invalid(field, "%s must be true or false", f.Label)
		}
	case FieldChoice:
		s, ok := v.(string)
		if !ok || !slices.Contains(f.Options, s) {
			return Invalid(field, "%s must be one of %v", f.Label, f.Options)
		}
	case FieldTime:
		s, ok := v.(string)
		if _, err := parseTime(s); !ok || err != nil {
			return Invalid(field, "%s must be a date and time such as 2026-03-01T14:30:00Z", f.Label)
		}
	case FieldDate:
		s, ok := v.(string)
		if _, err := time.Parse(time.DateOnly, s); !ok || err != nil {
			return Invalid(field, "%s must be a date such as 2026-03-01", f.Label)
		}
	case FieldNumber, FieldInteger:
		n, ok := number(v)
		if !ok || math.IsNaN(n) || math.IsInf(n, 0) {
			return Invalid(field, "%s must be a number", f.Label)
		}
		if f.Type == FieldInteger && n != math.Trunc(n) {
			return Invalid(field, "%s must be a whole number", f.Label)
		}
		if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
			return Invalid(field, "%s must be between %s and %s", f.Label, fmtBound(f.Min), fmtBound(f.Max))
		}
	default:
		return fmt.Errorf("pathway field %s has unknown type %q", f.Key, f.Type)
	}
	return nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

func fmtBound(b *float64) string {
	if b == nil {
		return "any"
	}
	return fmt.Sprintf("%g", *b)
}

// parseTime parses an RFC 3339 timestamp.
func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
