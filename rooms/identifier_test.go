package rooms_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"patientpass/rooms"
)

// wantInvalid fails the test unless err is a domain error with code invalid
// naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want invalid naming %q", field)
	}
	var e *rooms.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *rooms.Error", err, err)
	}
	if e.Code != rooms.CodeInvalid {
		t.Errorf("code = %q, want %q (%v)", e.Code, rooms.CodeInvalid, err)
	}
	if e.Field != field {
		t.Errorf("field = %q, want %q (%v)", e.Field, field, err)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Errorf("error naming %q has no message saying why", field)
	}
}

// wantValid fails the test if err is not nil.
func wantValid(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
}

func TestValidateNHSNumber(t *testing.T) {
	const field = "patient.nhs_number"
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"ten digits with a correct check digit", "9434765919", true},
		{"spaces in the 3-3-4 grouping are accepted", "943 476 5919", true},
		{"hyphens in the 3-3-4 grouping are accepted", "943-476-5919", true},
		{"surrounding whitespace is accepted", "  4010232137\t", true},
		{"remainder 0 makes the check digit 0 (11 becomes 0)", "9876543210", true},
		{"check digit 1", "1111111111", true},
		{"check digit 4", "4505577104", true},

		{"wrong check digit", "9434765918", false},
		{"digits transposed", "9434765991", false},
		{"check digit would be 10 so no number is valid (last digit 0)", "1234567890", false},
		{"check digit would be 10 so no number is valid (last digit 1)", "1234567891", false},
		{"check digit would be 10 so no number is valid (last digit 9)", "1234567899", false},
		{"nine digits", "943476591", false},
		{"eleven digits", "94347659190", false},
		{"a letter in place of a digit", "94347659I9", false},
		{"letters only", "ABCDEFGHIJ", false},
		{"empty", "", false},
		{"only spaces", "   ", false},
		{"a tab inside the number", "943\t4765919", false},
		{"full-width digits are not ASCII digits", "９４３４７６５９１９", false},
		{"a plus sign", "+943476591", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.ValidateNHSNumber(field, tt.in)
			if tt.valid {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, field)
		})
	}
}

func TestNormaliseNHSNumber(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"spaces removed", "943 476 5919", "9434765919"},
		{"hyphens removed", "943-476-5919", "9434765919"},
		{"surrounding whitespace trimmed", "\t9434765919 \n", "9434765919"},
		{"already plain", "9434765919", "9434765919"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rooms.NormaliseNHSNumber(tt.in); got != tt.want {
				t.Errorf("NormaliseNHSNumber(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateGMC(t *testing.T) {
	const field = "registration_number"
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"seven digits", "1234567", true},
		{"seven digits with leading zero", "0123456", true},
		{"six digits", "123456", false},
		{"eight digits", "12345678", false},
		{"a letter", "123456A", false},
		{"an NMC PIN", "12A3456B", false},
		{"empty", "", false},
		{"surrounding space", " 1234567", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.ValidateGMC(field, tt.in)
			if tt.valid {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, field)
		})
	}
}

func TestValidateNMC(t *testing.T) {
	const field = "registration_number"
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"2 digits, a letter, 4 digits, a letter", "12A3456B", true},
		{"lower-case letters", "12a3456b", true},
		{"other letters", "99Z0000E", true},
		{"letter first", "A123456B", false},
		{"one leading digit", "1A23456B", false},
		{"three leading digits", "123A456B", false},
		{"digit in place of the first letter", "1213456B", false},
		{"digit in place of the last letter", "12A34567", false},
		{"three middle digits", "12A345B", false},
		{"five middle digits", "12A34567B", false},
		{"two trailing letters", "12A3456BC", false},
		{"a space", "12A 3456B", false},
		{"empty", "", false},
		{"a GMC number", "1234567", false},
		// Upper-casing these non-ASCII letters yields ASCII I and S, which
		// must not let them pass as part of a PIN.
		{"dotless i is not an ASCII letter", "12ı3456B", false},
		{"long s is not an ASCII letter", "12A3456ſ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.ValidateNMC(field, tt.in)
			if tt.valid {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, field)
		})
	}
}

func TestValidateHCPC(t *testing.T) {
	const field = "registration_number"
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"2 letters and 5 digits", "PA12345", true},
		{"2 letters and 6 digits", "PA012345", true},
		{"lower-case prefix", "ph123456", true},
		{"4 digits", "PA1234", false},
		{"7 digits", "PA1234567", false},
		{"one letter", "P123456", false},
		{"three letters", "PAR12345", false},
		{"letter among the digits", "PA12A45", false},
		{"digits only", "1234567", false},
		{"empty", "", false},
		{"dotless i is not an ASCII letter", "ıA12345", false},
		{"long s is not an ASCII letter", "ſA12345", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.ValidateHCPC(field, tt.in)
			if tt.valid {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, field)
		})
	}
}

func TestValidateODS(t *testing.T) {
	const field = "organisation"
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"The Walton Centre", "RET", true},
		{"Countess of Chester Hospital", "RJR", true},
		{"letters and digits", "RET01", true},
		{"nine characters", "Y12345678", true},
		{"digits only", "123", true},
		{"lower-case letters are alphanumerics", "ret", true},
		{"two characters", "RE", false},
		{"ten characters", "Y123456789", false},
		{"empty", "", false},
		{"a hyphen", "RE-T", false},
		{"a space", "RE T", false},
		{"a slash", "RET/1", false},
		{"an underscore", "RE_T", false},
		{"non-ASCII letters", "RÉT", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.ValidateODS(field, tt.in)
			if tt.valid {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, field)
		})
	}
}

func TestValidateRegistration(t *testing.T) {
	const bodyField, numberField = "professional_body", "registration_number"
	tests := []struct {
		name      string
		body      rooms.ProfessionalBody
		number    string
		wantField string // empty when valid
	}{
		{"GMC number under GMC", rooms.BodyGMC, "1234567", ""},
		{"NMC PIN under NMC", rooms.BodyNMC, "12A3456B", ""},
		{"HCPC number under HCPC", rooms.BodyHCPC, "PA12345", ""},
		{"NMC PIN under GMC names the number", rooms.BodyGMC, "12A3456B", numberField},
		{"GMC number under NMC names the number", rooms.BodyNMC, "1234567", numberField},
		{"GMC number under HCPC names the number", rooms.BodyHCPC, "1234567", numberField},
		{"unknown body names the body", "RCN", "1234567", bodyField},
		{"lower-case body names the body", "gmc", "1234567", bodyField},
		{"empty body names the body", "", "1234567", bodyField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rooms.ValidateRegistration(bodyField, numberField, tt.body, tt.number)
			if tt.wantField == "" {
				wantValid(t, err)
				return
			}
			wantInvalid(t, err, tt.wantField)
		})
	}
}

// nhsChecksumHolds is the modulus-11 rule restated for ten ASCII digits: with
// weights 10..2 on the first nine digits and 1 on the tenth, the weighted sum
// is a multiple of 11. A check digit of 10 cannot be written as one digit, so
// this form rejects those numbers without a special case.
func nhsChecksumHolds(n string) bool {
	sum := 0
	for i := range 10 {
		sum += int(n[i]-'0') * (10 - i)
	}
	return sum%11 == 0
}

var tenASCIIDigits = regexp.MustCompile(`^[0-9]{10}$`)

func FuzzValidateNHSNumber(f *testing.F) {
	for _, s := range []string{"9434765919", "943 476 5919", "943-476-5919", "1234567890", "9876543210",
		"", " ", "943476591", "94347659190", "abcdefghij", "\u00a09434765919", "９４３４７６５９１９"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := rooms.ValidateNHSNumber("nhs", s)
		n := rooms.NormaliseNHSNumber(s)
		want := tenASCIIDigits.MatchString(n) && nhsChecksumHolds(n)
		if err == nil && !want {
			t.Fatalf("accepted %q (normalised %q), which is not 10 digits satisfying modulus 11", s, n)
		}
		if err != nil && want {
			t.Fatalf("rejected %q (normalised %q), which is 10 digits satisfying modulus 11: %v", s, n, err)
		}
		if err != nil {
			wantInvalid(t, err, "nhs")
		}
	})
}

var nmcPIN = regexp.MustCompile(`^[0-9]{2}[A-Za-z][0-9]{4}[A-Za-z]$`)

func FuzzValidateNMC(f *testing.F) {
	for _, s := range []string{"12A3456B", "12a3456b", "", "12A3456", "12A34567B", "1234567", "12ı3456B", "ſſſſſſſſ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := rooms.ValidateNMC("nmc", s)
		want := nmcPIN.MatchString(s)
		if err == nil && !want {
			t.Fatalf("accepted %q, which is not 2 digits, a letter, 4 digits and a letter", s)
		}
		if err != nil && want {
			t.Fatalf("rejected %q, which is a well-formed PIN: %v", s, err)
		}
		if err != nil {
			wantInvalid(t, err, "nmc")
		}
	})
}

var odsCode = regexp.MustCompile(`^[A-Za-z0-9]{3,9}$`)

func FuzzValidateODS(f *testing.F) {
	for _, s := range []string{"RET", "RJR", "Y12345678", "RE", "Y123456789", "", "RE-T", "RÉT", "ret"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := rooms.ValidateODS("ods", s)
		want := odsCode.MatchString(s)
		if err == nil && !want {
			t.Fatalf("accepted %q, which is not 3 to 9 letters and digits", s)
		}
		if err != nil && want {
			t.Fatalf("rejected %q, which is 3 to 9 letters and digits: %v", s, err)
		}
		if err != nil {
			wantInvalid(t, err, "ods")
		}
	})
}
