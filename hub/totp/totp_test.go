package totp

import (
	"strings"
	"testing"
	"time"
)

// rfcSecret is the SHA-1 seed of RFC 6238 Appendix B, "12345678901234567890".
var rfcSecret = b32.EncodeToString([]byte("12345678901234567890"))

// TestRFC6238Vectors checks the SHA-1 test vectors of RFC 6238 Appendix B (8
// digits), and that the 6-digit code is their last six digits.
func TestRFC6238Vectors(t *testing.T) {
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		at := time.Unix(tc.unix, 0)
		key, err := decodeSecret(rfcSecret)
		if err != nil {
			t.Fatal(err)
		}
		if got := code(key, Step(at), 8); got != tc.want {
			t.Errorf("T=%d: got %s, want %s", tc.unix, got, tc.want)
		}
		six, err := Code(rfcSecret, at)
		if err != nil {
			t.Fatal(err)
		}
		if six != tc.want[2:] {
			t.Errorf("T=%d: 6-digit code %s, want %s", tc.unix, six, tc.want[2:])
		}
	}
}

func TestVerifyAcceptsOneStepEitherSide(t *testing.T) {
	at := time.Unix(1234567890, 0)
	now := Step(at)
	for _, tc := range []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"current step", 0, true},
		{"previous step", -Period, true},
		{"next step", Period, true},
		{"two steps ago", -2 * Period, false},
		{"two steps ahead", 2 * Period, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Code(rfcSecret, at.Add(tc.offset))
			if err != nil {
				t.Fatal(err)
			}
			step, ok := Verify(rfcSecret, c, at)
			if ok != tc.ok {
				t.Fatalf("Verify = %v, want %v", ok, tc.ok)
			}
			if ok && step != Step(at.Add(tc.offset)) {
				t.Fatalf("matched step %d, want %d (now %d)", step, Step(at.Add(tc.offset)), now)
			}
		})
	}
}

func TestVerifyRefusesMalformedCodes(t *testing.T) {
	at := time.Unix(1234567890, 0)
	good, _ := Code(rfcSecret, at)
	for _, c := range []string{"", "12345", "1234567", "abcdef", good + "0"} {
		if _, ok := Verify(rfcSecret, c, at); ok {
			t.Errorf("Verify(%q) accepted", c)
		}
	}
	if _, ok := Verify("not base32!", good, at); ok {
		t.Error("Verify accepted a code for a malformed secret")
	}
	if _, ok := Verify(rfcSecret, good[:3]+" "+good[3:], at); !ok {
		t.Error("Verify refused a code with a space in the middle")
	}
}

func TestGenerate(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	key, err := decodeSecret(a)
	if err != nil || len(key) != secretLen {
		t.Fatalf("secret %q decodes to %d bytes, %v", a, len(key), err)
	}
	if _, err := Code(a, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestURI(t *testing.T) {
	got := URI("Patient Pass", "a.b@nhs.net", "ABC")
	want := "otpauth://totp/Patient%20Pass:a.b@nhs.net?secret=ABC&issuer=Patient%20Pass"
	if got != want {
		t.Fatalf("URI = %s, want %s", got, want)
	}
	if !strings.HasPrefix(got, "otpauth://totp/") {
		t.Fatal(got)
	}
}
