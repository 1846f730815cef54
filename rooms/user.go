package rooms

import (
	"slices"
	"strings"
	"time"
)

// Organisation is an NHS organisation identified by its ODS code.
type Organisation struct {
	ODS  string `json:"ods"`
	Name string `json:"name"`
}

// Role is what a user may do.
type Role string

// The roles of SPEC §4.
const (
	RoleClinician   Role = "clinician"
	RoleSpecialist  Role = "specialist"
	RoleCoordinator Role = "coordinator"
	RoleBedManager  Role = "bed_manager"
	RoleAdmin       Role = "admin"
)

// Roles lists every role.
var Roles = []Role{RoleClinician, RoleSpecialist, RoleCoordinator, RoleBedManager, RoleAdmin}

// ParseRole returns the role named s, or an invalid error naming field.
func ParseRole(field, s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", Invalid(field, "role must be one of clinician, specialist, coordinator, bed_manager, admin")
	}
	return r, nil
}

// UserStatus is where an account stands.
type UserStatus string

// Account statuses: pending until an admin of the user's organisation
// approves it.
const (
	UserPending   UserStatus = "pending"
	UserActive    UserStatus = "active"
	UserSuspended UserStatus = "suspended"
)

// ProfessionalBody is the regulator a clinician is registered with.
type ProfessionalBody string

// The professional bodies accepted at registration.
const (
	BodyGMC  ProfessionalBody = "GMC"
	BodyNMC  ProfessionalBody = "NMC"
	BodyHCPC ProfessionalBody = "HCPC"
)

// User is a clinician or staff member with an account.
type User struct {
	ID                 string           `json:"id"`
	Email              string           `json:"email"`
	Name               string           `json:"name"`
	ProfessionalBody   ProfessionalBody `json:"professional_body"`
	RegistrationNumber string           `json:"registration_number"`
	Organisation       string           `json:"organisation"`
	Roles              []Role           `json:"roles"`
	Status             UserStatus       `json:"status"`
	// PasswordHash is an encoded argon2id hash; never serialised.
	PasswordHash string `json:"-"`
	// TOTPSecret is the base32 TOTP secret, empty when not enrolled.
	TOTPSecret string `json:"-"`
	// TOTPPendingSecret is a secret offered at enrolment, not yet confirmed
	// with a code.
	TOTPPendingSecret string    `json:"-"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// HasRole reports whether u holds r.
func (u User) HasRole(r Role) bool { return slices.Contains(u.Roles, r) }

// PrimaryRole is the role recorded in audit entries: the first one held.
func (u User) PrimaryRole() Role {
	if len(u.Roles) == 0 {
		return ""
	}
	return u.Roles[0]
}

// NormaliseEmail lower-cases and trims an email address so that lookups and
// the unique constraint agree.
func NormaliseEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Author is who wrote an event, as they were when they wrote it.
type Author struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Role         Role   `json:"role"`
	Organisation string `json:"organisation"`
}

// AuthorOf snapshots u for an event.
func AuthorOf(u User) Author {
	return Author{ID: u.ID, Name: u.Name, Role: u.PrimaryRole(), Organisation: u.Organisation}
}
