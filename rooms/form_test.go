package rooms_test

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"patientpass/rooms"
)

// completeForm is an MSCC referral form with every field filled in validly,
// as a JSON decoder would produce it.
func completeForm() map[string]any {
	return map[string]any{
		"primary_cancer":              "Prostate adenocarcinoma",
		"histology":                   "Gleason 4+5",
		"spinal_levels":               "T6–T8",
		"pain_pattern":                "Band-like thoracic pain, worse lying flat",
		"neuro_limb_weakness":         true,
		"neuro_sensory_level":         "T8",
		"neuro_bladder_bowel":         false,
		"ambulatory_status":           "with_aid",
		"neuro_onset_at":              "2026-03-01T06:00:00Z",
		"mri_whole_spine_at":          "2026-03-01",
		"mri_report":                  "Epidural disease T7 with cord compression",
		"steroids_given":              true,
		"steroids_dose_mg":            16.0,
		"steroids_at":                 "2026-03-01T08:15:00Z",
		"spinal_precautions":          true,
		"sins_score":                  12.0,
		"who_performance_status":      1.0,
		"prognosis":                   "3_to_12_months",
		"prior_radiotherapy_to_level": false,
	}
}

// minimalForm has only the required fields, and no neurological deficit.
func minimalForm() map[string]any {
	return map[string]any{
		"primary_cancer":      "Breast",
		"spinal_levels":       "L2",
		"neuro_limb_weakness": false,
		"neuro_bladder_bowel": false,
		"ambulatory_status":   "independent",
		"steroids_given":      false,
		"spinal_precautions":  false,
	}
}

// specRequired are the MSCC form fields SPEC §4 marks as required.
var specRequired = []string{"primary_cancer", "spinal_levels", "neuro_limb_weakness", "neuro_bladder_bowel",
	"ambulatory_status", "steroids_given", "spinal_precautions"}

func TestMSCCFormMatchesSpec(t *testing.T) {
	want := []string{"primary_cancer", "histology", "spinal_levels", "pain_pattern", "neuro_limb_weakness",
		"neuro_sensory_level", "neuro_bladder_bowel", "ambulatory_status", "neuro_onset_at", "mri_whole_spine_at",
		"mri_report", "steroids_given", "steroids_dose_mg", "steroids_at", "spinal_precautions", "sins_score",
		"who_performance_status", "prognosis", "prior_radiotherapy_to_level"}
	var keys, required []string
	for _, f := range rooms.MSCC("RET").Form {
		keys = append(keys, f.Key)
		if f.Required {
			required = append(required, f.Key)
		}
	}
	if !slices.Equal(keys, want) {
		t.Errorf("MSCC form keys = %v, want %v", keys, want)
	}
	if !slices.Equal(required, specRequired) {
		t.Errorf("MSCC required keys = %v, want %v", required, specRequired)
	}
}

func TestValidateFormAccepts(t *testing.T) {
	p := rooms.MSCC("RET")
	with := func(base map[string]any, kv ...any) map[string]any {
		f := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			f[kv[i].(string)] = kv[i+1]
		}
		return f
	}
	tests := []struct {
		name string
		form map[string]any
	}{
		{"a complete form", completeForm()},
		{"only the required fields, no deficit, with false answers", minimalForm()},
		{"optional fields given as null", with(minimalForm(), "histology", nil, "sins_score", nil, "neuro_onset_at", nil)},
		{"optional text left empty", with(minimalForm(), "histology", "")},
		{"every ambulatory status: independent", with(minimalForm(), "ambulatory_status", "independent")},
		{"every ambulatory status: with_aid", with(minimalForm(), "ambulatory_status", "with_aid")},
		{"every ambulatory status: unable", with(minimalForm(), "ambulatory_status", "unable")},
		{"every prognosis: under_3_months", with(minimalForm(), "prognosis", "under_3_months")},
		{"every prognosis: 3_to_12_months", with(minimalForm(), "prognosis", "3_to_12_months")},
		{"every prognosis: over_12_months", with(minimalForm(), "prognosis", "over_12_months")},
		{"every prognosis: unknown", with(minimalForm(), "prognosis", "unknown")},
		{"SINS score 0, the lower bound", with(minimalForm(), "sins_score", 0.0)},
		{"SINS score 18, the upper bound", with(minimalForm(), "sins_score", 18.0)},
		{"SINS score as a Go int", with(minimalForm(), "sins_score", 7)},
		{"SINS score as an int64", with(minimalForm(), "sins_score", int64(7))},
		{"WHO performance status 4, the upper bound", with(minimalForm(), "who_performance_status", 4.0)},
		{"a fractional steroid dose", with(minimalForm(), "steroids_dose_mg", 8.5)},
		{"steroid dose 0", with(minimalForm(), "steroids_dose_mg", 0.0)},
		{"steroid dose 1000, the upper bound", with(minimalForm(), "steroids_dose_mg", 1000.0)},
		{"a time with an offset", with(minimalForm(), "steroids_at", "2026-07-01T09:00:00+01:00")},
		{"text of 10,000 characters", with(minimalForm(), "mri_report", strings.Repeat("x", 10000))},
		{"text over several lines with tabs", with(minimalForm(), "mri_report", "T7: epidural disease\r\n\tT8: normal\n")},
		{"text with accents and symbols", with(minimalForm(), "spinal_levels", "T6–T8 (Siân’s report)")},
		{"limb weakness with its onset time", with(minimalForm(), "neuro_limb_weakness", true, "neuro_onset_at", "2026-03-01T06:00:00Z")},
		{"bladder or bowel dysfunction with its onset time", with(minimalForm(), "neuro_bladder_bowel", true, "neuro_onset_at", "2026-03-01T06:00:00Z")},
		{"an onset time without a deficit", with(minimalForm(), "neuro_onset_at", "2026-03-01T06:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantValid(t, p.ValidateForm(tt.form))
		})
	}
}

func TestValidateFormRequired(t *testing.T) {
	p := rooms.MSCC("RET")
	for _, key := range specRequired {
		t.Run(key+" missing", func(t *testing.T) {
			f := completeForm()
			delete(f, key)
			wantInvalid(t, p.ValidateForm(f), "form."+key)
		})
		t.Run(key+" null", func(t *testing.T) {
			f := completeForm()
			f[key] = nil
			wantInvalid(t, p.ValidateForm(f), "form."+key)
		})
		t.Run(key+" empty text", func(t *testing.T) {
			f := completeForm()
			f[key] = ""
			wantInvalid(t, p.ValidateForm(f), "form."+key)
		})
	}
	t.Run("an empty form names the first required field", func(t *testing.T) {
		wantInvalid(t, p.ValidateForm(map[string]any{}), "form.primary_cancer")
	})
	t.Run("a nil form names the first required field", func(t *testing.T) {
		wantInvalid(t, p.ValidateForm(nil), "form.primary_cancer")
	})
}

func TestValidateFormRejects(t *testing.T) {
	p := rooms.MSCC("RET")
	tests := []struct {
		name  string
		key   string
		value any
	}{
		{"text given as a number", "primary_cancer", 42.0},
		{"text given as true", "histology", true},
		{"text over 10,000 characters", "mri_report", strings.Repeat("x", 10001)},
		{"text containing a NUL byte", "mri_report", "cord\x00compression"},
		{"text containing DEL", "histology", "adeno\x7fcarcinoma"},
		{"text that is not valid UTF-8", "primary_cancer", "Lung \xff\xfe"},
		{"yes/no given as text", "neuro_limb_weakness", "yes"},
		{"yes/no given as 1", "steroids_given", 1.0},
		{"yes/no given as text \"false\"", "spinal_precautions", "false"},
		{"choice not among the options", "ambulatory_status", "walking"},
		{"choice in the wrong case", "ambulatory_status", "Independent"},
		{"choice given as a number", "ambulatory_status", 1.0},
		{"prognosis not among the options", "prognosis", "weeks"},
		{"time that is not RFC 3339", "steroids_at", "2026-03-01 08:15"},
		{"time given as a date only", "neuro_onset_at", "2026-03-01"},
		{"time given as a number", "steroids_at", 1740816900.0},
		{"date with a time", "mri_whole_spine_at", "2026-03-01T00:00:00Z"},
		{"date that does not exist", "mri_whole_spine_at", "2026-02-30"},
		{"date in day/month/year order", "mri_whole_spine_at", "01/03/2026"},
		{"number given as text", "steroids_dose_mg", "16"},
		{"number below its minimum", "steroids_dose_mg", -1.0},
		{"number above its maximum", "steroids_dose_mg", 1000.5},
		{"number that is NaN", "steroids_dose_mg", math.NaN()},
		{"number that is infinite", "steroids_dose_mg", math.Inf(1)},
		{"SINS score 19, above 18", "sins_score", 19.0},
		{"SINS score -1, below 0", "sins_score", -1.0},
		{"SINS score 2.5, not whole", "sins_score", 2.5},
		{"SINS score given as text", "sins_score", "5"},
		{"SINS score as an int over 18", "sins_score", 19},
		{"WHO performance status 5, above 4", "who_performance_status", 5.0},
		{"WHO performance status as an int64 below 0", "who_performance_status", int64(-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := completeForm()
			f[tt.key] = tt.value
			wantInvalid(t, p.ValidateForm(f), "form."+tt.key)
		})
	}
}

func TestValidateFormUnknownKey(t *testing.T) {
	p := rooms.MSCC("RET")
	t.Run("a key the pathway does not define", func(t *testing.T) {
		f := completeForm()
		f["favourite_colour"] = "blue"
		wantInvalid(t, p.ValidateForm(f), "form.favourite_colour")
	})
	t.Run("a key differing only in case", func(t *testing.T) {
		f := completeForm()
		f["Primary_Cancer"] = "Lung"
		wantInvalid(t, p.ValidateForm(f), "form.Primary_Cancer")
	})
	t.Run("several unknown keys name the first in order, every time", func(t *testing.T) {
		for range 20 {
			f := completeForm()
			f["zeta"], f["alpha"], f["mu"] = 1, 2, 3
			wantInvalid(t, p.ValidateForm(f), "form.alpha")
		}
	})
}

func TestValidateFormNeuroOnset(t *testing.T) {
	p := rooms.MSCC("RET")
	tests := []struct {
		name           string
		limb, bladder  bool
		onset          any // nil means absent
		wantOnsetError bool
	}{
		{"no deficit and no onset time is accepted", false, false, nil, false},
		{"limb weakness without onset time names the onset", true, false, nil, true},
		{"bladder or bowel dysfunction without onset time names the onset", false, true, nil, true},
		{"both deficits without onset time names the onset", true, true, nil, true},
		{"limb weakness with an empty onset time names the onset", true, false, "", true},
		{"limb weakness with an onset time that is not a time names the onset", true, false, "this morning", true},
		{"both deficits with an onset time are accepted", true, true, "2026-03-01T06:00:00Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := minimalForm()
			f["neuro_limb_weakness"], f["neuro_bladder_bowel"] = tt.limb, tt.bladder
			if tt.onset != nil {
				f["neuro_onset_at"] = tt.onset
			}
			err := p.ValidateForm(f)
			if !tt.wantOnsetError {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, "form.neuro_onset_at")
		})
	}
}

func TestPatientValidate(t *testing.T) {
	now := time.Date(2026, time.June, 10, 12, 0, 0, 0, time.UTC)
	valid := rooms.Patient{NHSNumber: "943 476 5919", Name: "Ada Lovelace", DateOfBirth: "1956-04-30", Sex: "female"}
	tests := []struct {
		name      string
		edit      func(*rooms.Patient)
		wantField string // empty when valid
	}{
		{"a complete patient", func(*rooms.Patient) {}, ""},
		{"sex male", func(p *rooms.Patient) { p.Sex = "male" }, ""},
		{"sex other", func(p *rooms.Patient) { p.Sex = "other" }, ""},
		{"sex unknown", func(p *rooms.Patient) { p.Sex = "unknown" }, ""},
		{"a name of 200 characters", func(p *rooms.Patient) { p.Name = strings.Repeat("a", 200) }, ""},
		{"born today", func(p *rooms.Patient) { p.DateOfBirth = "2026-06-10" }, ""},
		{"born in 1880", func(p *rooms.Patient) { p.DateOfBirth = "1880-01-01" }, ""},

		{"an NHS number failing its check digit", func(p *rooms.Patient) { p.NHSNumber = "9434765918" }, "patient.nhs_number"},
		{"no NHS number", func(p *rooms.Patient) { p.NHSNumber = "" }, "patient.nhs_number"},
		{"no name", func(p *rooms.Patient) { p.Name = "" }, "patient.name"},
		{"a name of only spaces", func(p *rooms.Patient) { p.Name = "   " }, "patient.name"},
		{"a name containing a control character", func(p *rooms.Patient) { p.Name = "Ada\x07 Lovelace" }, "patient.name"},
		{"a name of 201 characters", func(p *rooms.Patient) { p.Name = strings.Repeat("a", 201) }, "patient.name"},
		{"no date of birth", func(p *rooms.Patient) { p.DateOfBirth = "" }, "patient.date_of_birth"},
		{"a date of birth in day/month/year order", func(p *rooms.Patient) { p.DateOfBirth = "30/04/1956" }, "patient.date_of_birth"},
		{"a date of birth that does not exist", func(p *rooms.Patient) { p.DateOfBirth = "1956-02-30" }, "patient.date_of_birth"},
		{"born tomorrow", func(p *rooms.Patient) { p.DateOfBirth = "2026-06-11" }, "patient.date_of_birth"},
		{"born before 1880", func(p *rooms.Patient) { p.DateOfBirth = "1879-12-31" }, "patient.date_of_birth"},
		{"no sex", func(p *rooms.Patient) { p.Sex = "" }, "patient.sex"},
		{"sex abbreviated", func(p *rooms.Patient) { p.Sex = "F" }, "patient.sex"},
		{"sex capitalised", func(p *rooms.Patient) { p.Sex = "Female" }, "patient.sex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid
			tt.edit(&p)
			err := p.Validate(now)
			if tt.wantField == "" {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, tt.wantField)
		})
	}
}

func TestParsePriority(t *testing.T) {
	for _, s := range []string{"emergency", "urgent", "routine"} {
		t.Run(s+" is a priority", func(t *testing.T) {
			got, err := rooms.ParsePriority("priority", s)
			wantValid(t, err)
			if string(got) != s {
				t.Errorf("ParsePriority(%q) = %q", s, got)
			}
		})
	}
	for _, s := range []string{"", "Emergency", "URGENT", "high", " routine"} {
		t.Run(fmt.Sprintf("%q is not a priority", s), func(t *testing.T) {
			got, err := rooms.ParsePriority("priority", s)
			wantInvalid(t, err, "priority")
			if got != "" {
				t.Errorf("ParsePriority(%q) returned %q alongside its error", s, got)
			}
		})
	}
}
