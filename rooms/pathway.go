package rooms

import "time"

// FieldType is the kind of value a referral form field holds.
type FieldType string

// Form field types. Times are RFC 3339 timestamps; dates are YYYY-MM-DD.
const (
	FieldText    FieldType = "text"
	FieldBool    FieldType = "bool"
	FieldChoice  FieldType = "choice"
	FieldTime    FieldType = "time"
	FieldDate    FieldType = "date"
	FieldNumber  FieldType = "number"
	FieldInteger FieldType = "integer"
)

// FormField describes one field of a pathway's referral form, so clients can
// render the form from data.
type FormField struct {
	Key      string    `json:"key"`
	Label    string    `json:"label"`
	Type     FieldType `json:"type"`
	Required bool      `json:"required"`
	Options  []string  `json:"options,omitempty"`
	Min      *float64  `json:"min,omitempty"`
	Max      *float64  `json:"max,omitempty"`
	// RequiredWhenAny makes the field required when any of the named bool
	// fields is true (neuro_onset_at when a deficit is present).
	RequiredWhenAny []string `json:"required_when_any,omitempty"`
}

// PlanSectionDef names one section of a pathway's management plan.
type PlanSectionDef struct {
	Name  string `json:"name"`
	Label string `json:"label"`
}

// TriagePolicy sets how quickly each priority must be triaged.
type TriagePolicy struct {
	// Emergency and Urgent are windows from submission, any day.
	Emergency time.Duration `json:"emergency"`
	Urgent    time.Duration `json:"urgent"`
	// RoutineHour is the hour (Europe/London) on the next working day by
	// which a routine referral must be triaged.
	RoutineHour int `json:"routine_hour"`
}

// Pathway is a referral pathway into a receiving organisation: its form,
// plan sections, bed types and triage policy.
type Pathway struct {
	ID                    string           `json:"id"`
	Name                  string           `json:"name"`
	ReceivingOrganisation string           `json:"receiving_organisation"`
	Form                  []FormField      `json:"form"`
	PlanSections          []PlanSectionDef `json:"plan_sections"`
	BedTypes              []string         `json:"bed_types"`
	Triage                TriagePolicy     `json:"triage"`
}

// HasPlanSection reports whether the pathway's plan has a section called name.
func (p Pathway) HasPlanSection(name string) bool {
	for _, s := range p.PlanSections {
		if s.Name == name {
			return true
		}
	}
	return false
}

// HasBedType reports whether bed is one of the pathway's bed types.
func (p Pathway) HasBedType(bed string) bool {
	for _, b := range p.BedTypes {
		if b == bed {
			return true
		}
	}
	return false
}

func bound(f float64) *float64 { return &f }

// MSCC returns the Metastatic Spinal Cord Compression pathway received by the
// organisation with ODS code receiving.
func MSCC(receiving string) Pathway {
	return Pathway{
		ID:                    "mscc",
		Name:                  "Metastatic Spinal Cord Compression",
		ReceivingOrganisation: receiving,
		Form: []FormField{
			{Key: "primary_cancer", Label: "Primary cancer", Type: FieldText, Required: true},
			{Key: "histology", Label: "Histology", Type: FieldText},
			{Key: "spinal_levels", Label: "Spinal level(s) affected", Type: FieldText, Required: true},
			{Key: "pain_pattern", Label: "Pain pattern", Type: FieldText},
			{Key: "neuro_limb_weakness", Label: "Limb weakness", Type: FieldBool, Required: true},
			{Key: "neuro_sensory_level", Label: "Sensory level", Type: FieldText},
			{Key: "neuro_bladder_bowel", Label: "Bladder or bowel dysfunction", Type: FieldBool, Required: true},
			{Key: "ambulatory_status", Label: "Ambulatory status", Type: FieldChoice, Required: true,
				Options: []string{"independent", "with_aid", "unable"}},
			{Key: "neuro_onset_at", Label: "Onset of neurological deficit", Type: FieldTime,
				RequiredWhenAny: []string{"neuro_limb_weakness", "neuro_bladder_bowel"}},
			{Key: "mri_whole_spine_at", Label: "Whole-spine MRI date", Type: FieldDate},
			{Key: "mri_report", Label: "MRI report", Type: FieldText},
			{Key: "steroids_given", Label: "Steroids given", Type: FieldBool, Required: true},
			{Key: "steroids_dose_mg", Label: "Steroid dose (mg)", Type: FieldNumber, Min: bound(0), Max: bound(1000)},
			{Key: "steroids_at", Label: "Steroids given at", Type: FieldTime},
			{Key: "spinal_precautions", Label: "Spinal precautions in place", Type: FieldBool, Required: true},
			{Key: "sins_score", Label: "SINS score", Type: FieldInteger, Min: bound(0), Max: bound(18)},
			{Key: "who_performance_status", Label: "WHO performance status", Type: FieldInteger, Min: bound(0), Max: bound(4)},
			{Key: "prognosis", Label: "Prognosis", Type: FieldChoice,
				Options: []string{"under_3_months", "3_to_12_months", "over_12_months", "unknown"}},
			{Key: "prior_radiotherapy_to_level", Label: "Prior radiotherapy to this level", Type: FieldBool},
		},
		PlanSections: []PlanSectionDef{
			{Name: "imaging", Label: "Imaging"},
			{Name: "steroids", Label: "Steroids"},
			{Name: "spinal_precautions", Label: "Spinal precautions"},
			{Name: "surgical_opinion", Label: "Surgical opinion"},
			{Name: "oncology_opinion", Label: "Oncology opinion"},
			{Name: "radiotherapy", Label: "Radiotherapy"},
			{Name: "transfer", Label: "Transfer"},
			{Name: "follow_up", Label: "Follow-up"},
		},
		BedTypes: []string{"neurosurgical", "spinal", "oncology"},
		Triage:   TriagePolicy{Emergency: time.Hour, Urgent: 4 * time.Hour, RoutineHour: 12},
	}
}
