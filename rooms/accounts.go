package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Register creates a pending account for a clinician who signed up; an admin
// of their organisation must approve it before they can log in. Admin
// accounts cannot be requested: admins are made with `patientpass user
// create`.
//
// Registering an email that already has an account answers as a success
// would (a fresh id, pending) but creates nothing, so the form cannot be
// used to find out who has an account (OWASP account enumeration); the
// attempt is audited as duplicate_email, without the address.
func (s *Service) Register(ctx context.Context, clientAddr string, n NewUser) (User, error) {
	anonymous := Caller{ClientAddr: clientAddr}
	if len(n.Roles) != 1 {
		return User{}, Invalid("role", "request exactly one role")
	}
	if n.Roles[0] == RoleAdmin {
		err := Invalid("role", "admin accounts are created by an existing admin, not requested")
		_ = s.AuditCaller(ctx, anonymous, ActionCreate, "user.register", nil, OutcomeInvalid, "invalid role")
		return User{}, err
	}
	n.Status = UserPending
	n.TOTPSecret = ""
	return s.createUser(ctx, anonymous, n, "user.register")
}

// CreateUser creates an account in an existing organisation on behalf of c
// (the platform, or an admin).
func (s *Service) CreateUser(ctx context.Context, c Caller, n NewUser) (User, error) {
	return s.createUser(ctx, c, n, "user.create")
}

// errDuplicateEmail is how createUser's transaction reports a taken email;
// the callers decide what the caller is told.
var errDuplicateEmail = &Error{Code: CodeConflict, Field: "email", Message: "an account with this email already exists"}

func (s *Service) createUser(ctx context.Context, c Caller, n NewUser, event string) (User, error) {
	if err := s.refuseIntegrator(ctx, c, ActionCreate, event); err != nil {
		return User{}, err
	}
	if err := n.Validate(); err != nil {
		_ = s.AuditCaller(ctx, c, ActionCreate, event, nil, OutcomeInvalid, "invalid "+fieldOf(err))
		return User{}, err
	}
	now := s.clock.Now().Truncate(time.Microsecond)
	u := User{
		ID: NewID(), Email: n.Email, Name: n.Name,
		ProfessionalBody: n.ProfessionalBody, RegistrationNumber: n.RegistrationNumber,
		Organisation: n.Organisation, Roles: n.Roles, Status: n.Status,
		PasswordHash: n.PasswordHash, TOTPSecret: n.TOTPSecret,
		CreatedAt: now, UpdatedAt: now,
	}
	err := s.store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Organisation(ctx, u.Organisation); errors.Is(err, ErrNotFound) {
			return Invalid("organisation", "there is no organisation with ODS code %s", u.Organisation)
		} else if err != nil {
			return fmt.Errorf("read organisation %s: %w", u.Organisation, err)
		}
		if err := tx.CreateUser(ctx, u); errors.Is(err, ErrDuplicate) {
			return errDuplicateEmail
		} else if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		e := s.entry(c, ActionCreate, event, nil, OutcomeSuccess, "user="+u.ID+" status="+string(u.Status))
		return s.appendAudit(ctx, tx, e)
	})
	if errors.Is(err, errDuplicateEmail) && event == "user.register" {
		_ = s.AuditCaller(ctx, c, ActionCreate, event, nil, OutcomeInvalid, "duplicate_email")
		// What a success returns, with an id that names nobody.
		u.ID = NewID()
		return u, nil
	}
	if err != nil {
		if CodeOf(err) != CodeInternal {
			_ = s.AuditCaller(ctx, c, ActionCreate, event, nil, OutcomeInvalid, string(CodeOf(err))+" "+fieldOf(err))
		}
		return User{}, err
	}
	return u, nil
}

// requireAdmin checks that c is an active admin.
func requireAdmin(c Caller) error {
	if err := checkCaller(c); err != nil {
		return err
	}
	if !c.User.HasRole(RoleAdmin) {
		return Forbidden("only admins can manage accounts")
	}
	return nil
}

// Users lists the accounts of the admin's organisation, filtered by status
// when set. The listing is audited.
func (s *Service) Users(ctx context.Context, admin Caller, status UserStatus) ([]User, error) {
	if err := requireAdmin(admin); err != nil {
		_ = s.AuditCaller(ctx, admin, ActionRead, "user.list", nil, OutcomeDenied, string(CodeOf(err)))
		return nil, err
	}
	switch status {
	case "", UserPending, UserActive, UserSuspended:
	default:
		return nil, Invalid("status", "status must be pending, active or suspended")
	}
	us, err := s.store.Users(ctx, UserFilter{Organisation: admin.User.Organisation, Status: status})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	if err := s.AuditCaller(ctx, admin, ActionRead, "user.list", nil, OutcomeSuccess, fmt.Sprintf("status=%s count=%d", status, len(us))); err != nil {
		return nil, err
	}
	return us, nil
}

// ApproveUser activates a pending account of the admin's organisation, after
// the admin has checked the professional register.
func (s *Service) ApproveUser(ctx context.Context, admin Caller, userID string) (User, error) {
	return s.changeStatus(ctx, admin, userID, "user.approve", []UserStatus{UserPending}, UserActive)
}

// SuspendUser suspends an account of the admin's organisation and ends all
// its sessions.
func (s *Service) SuspendUser(ctx context.Context, admin Caller, userID string) (User, error) {
	u, err := s.changeStatus(ctx, admin, userID, "user.suspend", []UserStatus{UserPending, UserActive}, UserSuspended)
	if err != nil {
		return User{}, err
	}
	if _, err := s.store.DeleteUserSessions(ctx, u.ID); err != nil {
		return User{}, fmt.Errorf("end sessions of suspended user %s: %w", u.ID, err)
	}
	return u, nil
}

// ReinstateUser makes a suspended account of the admin's organisation active
// again.
func (s *Service) ReinstateUser(ctx context.Context, admin Caller, userID string) (User, error) {
	return s.changeStatus(ctx, admin, userID, "user.reinstate", []UserStatus{UserSuspended}, UserActive)
}

func (s *Service) changeStatus(ctx context.Context, admin Caller, userID, event string, from []UserStatus, to UserStatus) (User, error) {
	var u User
	err := requireAdmin(admin)
	if err == nil {
		if err = CheckID("id", userID); err != nil {
			// The id is not quoted in the entry: it could hold a NUL.
			_ = s.AuditCaller(ctx, admin, ActionUpdate, event, nil, OutcomeInvalid, "invalid id")
			return User{}, err
		}

		err = s.store.InTx(ctx, func(tx Tx) error {
			var err error
			u, err = tx.LockUser(ctx, userID)
			if errors.Is(err, ErrNotFound) || (err == nil && u.Organisation != admin.User.Organisation) {
				return NotFound("user") // admins see only their own organisation
			}
			if err != nil {
				return fmt.Errorf("read user %s: %w", userID, err)
			}
			if u.ID == admin.User.ID {
				return Forbidden("you cannot change the status of your own account")
			}
			ok := false
			for _, f := range from {
				ok = ok || u.Status == f
			}
			if !ok {
				return Conflict("the account is %s", u.Status)
			}
			u.Status = to
			u.UpdatedAt = s.clock.Now().Truncate(time.Microsecond)
			if err := tx.UpdateUser(ctx, u); err != nil {
				return fmt.Errorf("update user %s: %w", u.ID, err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionUpdate, event, nil, OutcomeSuccess, "user="+u.ID))
		})
	}
	if err != nil {
		if CodeOf(err) != CodeInternal {
			_ = s.AuditCaller(ctx, admin, ActionUpdate, event, nil, OutcomeDenied, string(CodeOf(err))+" user="+userID)
		}
		return User{}, err
	}
	return u, nil
}
