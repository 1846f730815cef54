package rooms

import (
	"strings"
)

// ValidateNHSNumber checks a 10-digit NHS number with its modulus-11 check
// digit. Spaces and hyphens used for readability ("943 476 5919") are
// accepted; NormaliseNHSNumber strips them. The error names field.
func ValidateNHSNumber(field, s string) error {
	n := NormaliseNHSNumber(s)
	if n == "" {
		return Invalid(field, "NHS number is required")
	}
	if len(n) != 10 || !allDigits(n) {
		return Invalid(field, "NHS number must be 10 digits")
	}
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(n[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 || check != int(n[9]-'0') {
		return Invalid(field, "NHS number fails its check digit; please re-check it against the patient's record")
	}
	return nil
}

// NormaliseNHSNumber removes the spaces and hyphens people type in NHS numbers.
func NormaliseNHSNumber(s string) string {
	return strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(s))
}

// ValidateGMC checks a General Medical Council reference number: 7 digits.
func ValidateGMC(field, s string) error {
	if len(s) != 7 || !allDigits(s) {
		return Invalid(field, "GMC number must be 7 digits")
	}
	return nil
}

// ValidateNMC checks a Nursing and Midwifery Council PIN: 2 digits, a letter,
// 4 digits and a letter, such as 12A3456B.
func ValidateNMC(field, s string) error {
	ok := len(s) == 8 && allDigits(s[0:2]) && isLetter(s[2]) && allDigits(s[3:7]) && isLetter(s[7])
	if !ok {
		return Invalid(field, "NMC PIN must be 2 digits, a letter, 4 digits and a letter (for example 12A3456B)")
	}
	return nil
}

// ValidateHCPC checks a Health and Care Professions Council registration
// number: a 2-letter profession prefix and 5 or 6 digits, such as PA012345.
func ValidateHCPC(field, s string) error {
	ok := len(s) >= 7 && len(s) <= 8 && isLetter(s[0]) && isLetter(s[1]) && allDigits(s[2:])
	if !ok {
		return Invalid(field, "HCPC number must be 2 letters and 5 or 6 digits (for example PA12345)")
	}
	return nil
}

// ValidateODS checks an ODS organisation code: 3 to 9 letters and digits.
func ValidateODS(field, s string) error {
	if len(s) < 3 || len(s) > 9 {
		return Invalid(field, "ODS code must be 3 to 9 letters and digits")
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && !(s[i] >= '0' && s[i] <= '9') {
			return Invalid(field, "ODS code must be 3 to 9 letters and digits")
		}
	}
	return nil
}

// ValidateRegistration checks a professional registration number against the
// rules of its body.
func ValidateRegistration(bodyField, numberField string, body ProfessionalBody, number string) error {
	switch body {
	case BodyGMC:
		return ValidateGMC(numberField, number)
	case BodyNMC:
		return ValidateNMC(numberField, number)
	case BodyHCPC:
		return ValidateHCPC(numberField, number)
	default:
		return Invalid(bodyField, "professional body must be GMC, NMC or HCPC")
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLetter(b byte) bool { return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') }
