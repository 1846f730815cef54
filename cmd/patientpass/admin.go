package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"patientpass/hub/password"
	"patientpass/persistence/postgres"
	"patientpass/rooms"
)

// migrate applies the store's migrations and exits.
func (a *app) migrate(ctx context.Context, args []string) error {
	var cfg config
	if err := a.parse(a.flagSet("migrate", &cfg), args); err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
	} else {
		s, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		s.Close()
	}
	fmt.Fprintf(a.stdout, "%s store migrated\n", storeKind(cfg))
	return nil
}

// userCreate creates an active account, typically the first admin of an
// organisation, creating the organisation when --org-name is given.
func (a *app) userCreate(ctx context.Context, args []string) error {
	var cfg config
	fs := a.flagSet("user create", &cfg)
	email := fs.String("email", "", "work email (required)")
	name := fs.String("name", "", "full name (required)")
	org := fs.String("org", "", "ODS code of the user's organisation (required)")
	orgName := fs.String("org-name", "", "creates or renames the organisation with this name")
	body := fs.String("body", "GMC", "professional body: GMC, NMC or HCPC")
	number := fs.String("number", "", "professional registration number (required)")
	roles := fs.String("role", "admin", "comma-separated roles: clinician, specialist, coordinator, bed_manager, admin")
	pw := fs.String("password", "", "initial password; generated and printed when unset (env PATIENTPASS_USER_PASSWORD)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *pw == "" {
		*pw = a.getenv("PATIENTPASS_USER_PASSWORD")
	}
	generated := *pw == ""
	if generated {
		*pw = rand.Text()
	}
	if n := len([]rune(*pw)); n < 12 || n > 128 {
		return errors.New("--password must be 12 to 128 characters")
	}
	hash, err := password.Hash(*pw)
	if err != nil {
		return err
	}
	n := rooms.NewUser{
		Name: *name, Email: *email, ProfessionalBody: rooms.ProfessionalBody(strings.ToUpper(*body)),
		RegistrationNumber: *number, Organisation: *org, Status: rooms.UserActive, PasswordHash: hash,
	}
	for _, r := range strings.Split(*roles, ",") {
		n.Roles = append(n.Roles, rooms.Role(strings.TrimSpace(r)))
	}

	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := rooms.NewService(rooms.Config{Store: store, Node: cfg.Node})
	if *orgName != "" {
		if err := svc.PutOrganisation(ctx, rooms.System, rooms.Organisation{ODS: *org, Name: *orgName}); err != nil {
			return flagError(err)
		}
	}
	u, err := svc.CreateUser(ctx, rooms.System, n)
	if err != nil {
		return flagError(err)
	}
	fmt.Fprintf(a.stdout, "created %s (%s), id %s, roles %s\n", u.Email, u.Organisation, u.ID, *roles)
	if generated {
		fmt.Fprintf(a.stdout, "password: %s\n(shown once: give it to the user and ask them to change it)\n", *pw)
	}
	return nil
}

// flagError names the command-line flag behind a domain field error.
func flagError(err error) error {
	var e *rooms.Error
	if !errors.As(err, &e) || e.Field == "" {
		return err
	}
	flagName := map[string]string{
		"professional_body": "--body", "registration_number": "--number", "organisation": "--org",
		"role": "--role", "email": "--email", "name": "--name", "ods": "--org",
	}[e.Field]
	if flagName == "" {
		return err
	}
	return fmt.Errorf("%s: %s", flagName, e.Message)
}

// auditVerify walks every audit chain: exit 0 when intact, 1 naming the
// first broken entry, 2 on a bad command line or when the store cannot be
// read.
func (a *app) auditVerify(ctx context.Context, args []string) int {
	var cfg config
	if err := a.parse(a.flagSet("audit verify", &cfg), args); err != nil {
		return 2
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(a.stderr, "patientpass audit verify: %v\n", err)
		return 2
	}
	defer store.Close()
	checked, broken, err := rooms.VerifyAudit(ctx, store)
	if err != nil {
		fmt.Fprintf(a.stderr, "patientpass audit verify: %v\n", err)
		return 2
	}
	if broken != nil {
		fmt.Fprintf(a.stdout, "audit log BROKEN: %v\n(%d entries checked before the break)\n", broken, checked)
		return 1
	}
	fmt.Fprintf(a.stdout, "audit log intact: %d entries in %d chains verified\n", checked, rooms.AuditChains)
	return 0
}
