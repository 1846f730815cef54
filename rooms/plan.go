package rooms

import "time"

// PlanSection is one section of a referral's management plan. Each section
// has its own revision so edits to different sections never conflict.
type PlanSection struct {
	Name      string    `json:"name"`
	Revision  int64     `json:"revision"`
	Text      string    `json:"text"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Plan is a referral's management plan, one entry per pathway section in the
// pathway's order; a section never edited has revision 0 and no text.
type Plan struct {
	Sections []PlanSection `json:"sections"`
}

// Section returns the named section, or a revision-0 blank one.
func (p Plan) Section(name string) PlanSection {
	for _, s := range p.Sections {
		if s.Name == name {
			return s
		}
	}
	return PlanSection{Name: name}
}

// completePlan returns the pathway's sections in order, filled in from stored.
func completePlan(pw Pathway, stored []PlanSection) Plan {
	byName := make(map[string]PlanSection, len(stored))
	for _, s := range stored {
		byName[s.Name] = s
	}
	plan := Plan{Sections: make([]PlanSection, 0, len(pw.PlanSections))}
	for _, def := range pw.PlanSections {
		s, ok := byName[def.Name]
		if !ok {
			s = PlanSection{Name: def.Name}
		}
		plan.Sections = append(plan.Sections, s)
	}
	return plan
}
