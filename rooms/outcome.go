package rooms

import (
	"maps"
	"slices"
	"strings"
)

// outcomeKind is the kind of value one outcome field holds.
type outcomeKind int

const (
	outcomeBedType outcomeKind = iota // one of the pathway's bed types
	outcomeText                       // free text under the field's rule
	outcomeTime                       // an RFC 3339 timestamp
)

// outcomeField is one key a move's outcome may carry.
type outcomeField struct {
	key      string
	kind     outcomeKind
	required bool
	rule     textRule // for outcomeText; rule.what names the field for every kind
}

// outcomeFields is SPEC §9's outcome of each status that takes one, in the
// order its fields are checked. A status absent here takes no outcome.
var outcomeFields = map[Status][]outcomeField{
	StatusAccepted: {
		{key: "bed_type", kind: outcomeBedType, required: true, rule: textRule{what: "the bed type"}},
	},
	StatusTransferBooked: {
		{key: "bed_type", kind: outcomeBedType, required: true, rule: textRule{what: "the bed type"}},
		{key: "ward", kind: outcomeText, required: true,
			rule: textRule{what: "the ward", required: true, maxChars: MaxWardLen}},
		{key: "expected_at", kind: outcomeTime, required: true, rule: textRule{what: "the expected arrival time"}},
	},
	StatusTransferred: {
		{key: "arrived_at", kind: outcomeTime, required: true, rule: textRule{what: "the arrival time"}},
	},
	StatusManagedRemotely: {
		{key: "advice", kind: outcomeText,
			rule: textRule{what: "the advice", multiline: true, maxChars: MaxAdviceLen, maxBytes: MaxAdviceBytes}},
	},
}

// CheckOutcome checks the outcome of a move to status to in pathway p: only
// the keys that status takes, each of the right JSON type and within the
// text rules, and the required ones present. A JSON null is taken as
// absent. The error names the field at fault, "outcome.<key>", or
// "outcome" when the status takes no outcome at all.
func CheckOutcome(p Pathway, to Status, outcome map[string]any) error {
	fields, takes := outcomeFields[to]
	if !takes {
		if len(outcome) > 0 {
			return Invalid("outcome", "moving a referral to %s takes no outcome", humanStatus(to))
		}
		return nil
	}
	var unknown []string
	for k := range outcome {
		if !slices.ContainsFunc(fields, func(f outcomeField) bool { return f.key == k }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		keys := make([]string, len(fields))
		for i, f := range fields {
			keys[i] = f.key
		}
		if !isCleanText(unknown[0]) || len(unknown[0]) > 100 {
			return Invalid("outcome", "the outcome has a field whose name is not text; a move to %s takes %s",
				humanStatus(to), strings.Join(keys, ", "))
		}
		return Invalid("outcome."+unknown[0], "%q is not part of the outcome of a move to %s, which takes %s",
			unknown[0], humanStatus(to), strings.Join(keys, ", "))
	}
	for _, f := range fields {
		if err := f.check(p, to, outcome[f.key]); err != nil {
			return err
		}
	}
	return nil
}

func (f outcomeField) check(p Pathway, to Status, v any) error {
	field := "outcome." + f.key
	if v == nil {
		if f.required {
			return Invalid(field, "%s is required to move a referral to %s", f.rule.what, humanStatus(to))
		}
		return nil
	}
	s, ok := v.(string)
	switch f.kind {
	case outcomeBedType:
		if !ok || !p.HasBedType(s) {
			return Invalid(field, "%s must be one of %s", f.rule.what, strings.Join(p.BedTypes, ", "))
		}
	case outcomeTime:
		if _, err := parseTime(s); !ok || err != nil {
			return Invalid(field, "%s must be a date and time such as 2026-03-01T14:30:00Z", f.rule.what)
		}
	case outcomeText:
		if !ok {
			return Invalid(field, "%s must be text", f.rule.what)
		}
		return f.rule.check(field, s)
	}
	return nil
}

// checkOutcomeText refuses, before any store is asked, an outcome whose
// string values could not be stored (NUL, bytes that are not UTF-8, hidden
// controls); the full check needs the pathway and runs in the transaction.
func checkOutcomeText(outcome map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(outcome)) {
		if !isCleanText(k) || len(k) > 100 {
			return Invalid("outcome", "the outcome has a field whose name is not text")
		}
		if s, ok := outcome[k].(string); ok {
			if err := checkChars("outcome."+k, "the "+strings.ReplaceAll(k, "_", " "), s, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// withoutNulls returns outcome without its null values (a JSON null is an
// absent field), or nil when nothing is left.
func withoutNulls(outcome map[string]any) map[string]any {
	var out map[string]any
	for k, v := range outcome {
		if v != nil {
			if out == nil {
				out = make(map[string]any, len(outcome))
			}
			out[k] = v
		}
	}
	return out
}

// mergeOutcome records the outcome of a move to status to in r.Outcomes:
// each status keeps its own, so booking a transfer never erases the bed
// type accepted for, and a repeated move into one status merges by key.
func (r *Referral) mergeOutcome(to Status, outcome map[string]any) {
	if len(outcome) == 0 {
		return
	}
	if r.Outcomes == nil {
		r.Outcomes = map[Status]map[string]any{}
	}
	merged := maps.Clone(r.Outcomes[to])
	if merged == nil {
		merged = make(map[string]any, len(outcome))
	}
	maps.Copy(merged, outcome)
	r.Outcomes[to] = merged
}
