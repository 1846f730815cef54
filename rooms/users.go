package rooms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NewUser is an account to create.
type NewUser struct {
	Name               string
	Email              string
	ProfessionalBody   ProfessionalBody
	RegistrationNumber string
	Organisation       string
	Roles              []Role
	Status             UserStatus
	// PasswordHash is the encoded hash of the user's password; rooms never
	// sees passwords.
	PasswordHash string
	TOTPSecret   string
}

// Validate checks the account's fields, naming the first one at fault.
func (n *NewUser) Validate() error {
	n.Name = strings.TrimSpace(n.Name)
	// Checked before lower-casing, which would turn bytes that are not
	// UTF-8 into U+FFFD and hide them.
	emailErr := CheckEmail("email", strings.TrimSpace(n.Email))
	n.Email = NormaliseEmail(n.Email)
	n.RegistrationNumber = strings.ToUpper(strings.TrimSpace(n.RegistrationNumber))
	n.Organisation = strings.ToUpper(strings.TrimSpace(n.Organisation))
	if err := checkName("name", "name", n.Name); err != nil {
		return err
	}
	if emailErr != nil {
		return emailErr
	}
	if err := ValidateRegistration("professional_body", "registration_number", n.ProfessionalBody, n.RegistrationNumber); err != nil {
		return err
	}
	if err := ValidateODS("organisation", n.Organisation); err != nil {
		return err
	}
	if len(n.Roles) == 0 {
		return Invalid("role", "at least one role is required")
	}
	for _, r := range n.Roles {
		if _, err := ParseRole("role", string(r)); err != nil {
			return err
		}
	}
	switch n.Status {
	case UserPending, UserActive, UserSuspended:
	default:
		return Invalid("status", "status must be pending, active or suspended")
	}
	if n.PasswordHash == "" {
		return Invalid("password", "a password is required")
	}
	return nil
}

// Credentials are the fields of an account that hold its secrets.
type Credentials struct {
	PasswordHash      string
	TOTPSecret        string
	TOTPPendingSecret string
}

// UpdateCredentials changes a user's password hash or second-factor secrets,
// audited as event (such as "user.totp_confirm"). The user is read, locked
// and written in one transaction and only the credential fields can change,
// so a concurrent change of status (a suspension) is never undone.
func (s *Service) UpdateCredentials(ctx context.Context, c Caller, userID, event string, change func(*Credentials)) error {
	if err := s.refuseIntegrator(ctx, c, ActionUpdate, event); err != nil {
		return err
	}
	if err := CheckID("user_id", userID); err != nil {
		return err
	}
	return s.store.InTx(ctx, func(tx Tx) error {
		u, err := tx.LockUser(ctx, userID)
		if err != nil {
			return fmt.Errorf("lock user %s: %w", userID, err)
		}
		creds := Credentials{PasswordHash: u.PasswordHash, TOTPSecret: u.TOTPSecret, TOTPPendingSecret: u.TOTPPendingSecret}
		change(&creds)
		u.PasswordHash, u.TOTPSecret, u.TOTPPendingSecret = creds.PasswordHash, creds.TOTPSecret, creds.TOTPPendingSecret
		u.UpdatedAt = s.clock.Now().Truncate(time.Microsecond)
		if err := tx.UpdateUser(ctx, u); err != nil {
			return fmt.Errorf("update user %s: %w", u.ID, err)
		}
		return s.appendAudit(ctx, tx, s.entry(c, ActionUpdate, event, nil, OutcomeSuccess, "user="+u.ID))
	})
}

// PutOrganisation creates or renames an organisation.
func (s *Service) PutOrganisation(ctx context.Context, c Caller, o Organisation) error {
	if err := s.refuseIntegrator(ctx, c, ActionUpdate, "organisation.put"); err != nil {
		return err
	}
	o.ODS = strings.ToUpper(strings.TrimSpace(o.ODS))
	o.Name = strings.TrimSpace(o.Name)
	if err := ValidateODS("ods", o.ODS); err != nil {
		return err
	}
	if err := (textRule{what: "organisation name", required: true, maxChars: MaxNameLen}).check("name", o.Name); err != nil {
		return err
	}
	return s.store.InTx(ctx, func(tx Tx) error {
		if err := tx.PutOrganisation(ctx, o); err != nil {
			return fmt.Errorf("put organisation %s: %w", o.ODS, err)
		}
		return s.appendAudit(ctx, tx, s.entry(c, ActionUpdate, "organisation.put", nil, OutcomeSuccess, "ods="+o.ODS))
	})
}

// PutPathway creates or replaces a pathway; its receiving organisation must
// exist.
func (s *Service) PutPathway(ctx context.Context, c Caller, p Pathway) error {
	if err := s.refuseIntegrator(ctx, c, ActionUpdate, "pathway.put"); err != nil {
		return err
	}
	if p.ID == "" {
		return Invalid("id", "pathway id is required")
	}
	if err := ruleKey.check("id", p.ID); err != nil {
		return err
	}
	return s.store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Organisation(ctx, p.ReceivingOrganisation); errors.Is(err, ErrNotFound) {
			return Invalid("receiving_organisation", "there is no organisation with ODS code %s", p.ReceivingOrganisation)
		} else if err != nil {
			return fmt.Errorf("read organisation %s: %w", p.ReceivingOrganisation, err)
		}
		if err := tx.PutPathway(ctx, p); err != nil {
			return fmt.Errorf("put pathway %s: %w", p.ID, err)
		}
		return s.appendAudit(ctx, tx, s.entry(c, ActionUpdate, "pathway.put", nil, OutcomeSuccess, "pathway="+p.ID))
	})
}

func fieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// HasAdminRole reports whether the account is to be an admin.
func (n NewUser) HasAdminRole() bool {
	for _, r := range n.Roles {
		if r == RoleAdmin {
			return true
		}
	}
	return false
}
