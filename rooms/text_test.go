package rooms_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"patientpass/rooms"
)

func TestEncodedLenMatchesEncodingJSON(t *testing.T) {
	var cases []string
	for r := rune(0); r < 0x3000; r++ {
		cases = append(cases, string(r), "a"+string(r)+"b")
	}
	cases = append(cases, "", "\xff", "a\xc3", "\xed\xa0\x80", "😀<>&\"\\\u2028\u2029\x00\x7f",
		strings.Repeat("<", 20000), strings.Repeat("😀", 100), string(rune(0x10ffff)))
	for _, s := range cases {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got, want := rooms.EncodedLen(s), buf.Len()-1; got != want { // Encode adds a newline
			t.Fatalf("EncodedLen(%q) = %d, encoding/json writes %d bytes", s, got, want)
		}
	}
}

// TestTextRules checks the one set of character rules through a single-line
// field (a patient's name) and a multi-line one (a reason).
func TestTextRules(t *testing.T) {
	tests := []struct {
		name                  string
		s                     string
		singleLineOK, multiOK bool
	}{
		{"plain text", "Jane Doe", true, true},
		{"accents and other scripts", "Siân Ó Súilleabháin محمد 王小明", true, true},
		{"a joiner inside a name", "Zoë\u200dSmith", true, true},
		{"tab", "Jane\tDoe", false, true},
		{"newline", "Jane\nDoe", false, true},
		{"carriage return", "Jane\r\nDoe", false, true},
		{"line separator", "Jane\u2028Doe", false, true},
		{"NUL", "Jane\x00Doe", false, false},
		{"escape", "Jane\x1b[2JDoe", false, false},
		{"DEL", "Jane\x7fDoe", false, false},
		{"C1 next line", "Jane\u0085Doe", false, false},
		{"C1 application program command", "Jane\u009fDoe", false, false},
		{"right-to-left override", "Jane\u202eeoD", false, false},
		{"left-to-right embedding", "Jane\u202aDoe", false, false},
		{"first strong isolate", "Jane\u2068Doe", false, false},
		{"pop directional isolate", "Jane\u2069Doe", false, false},
		{"left-to-right mark", "Jane\u200eDoe", false, false},
		{"right-to-left mark", "Jane\u200fDoe", false, false},
		{"Arabic letter mark", "Jane\u061cDoe", false, false},
		{"invalid UTF-8", "Jane\xffDoe", false, false},
		{"a truncated UTF-8 sequence", "Jane\xc3", false, false},
		{"an encoded surrogate", "Jane\xed\xa0\x80", false, false},
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rooms.Patient{NHSNumber: "9434765919", Name: tt.s, DateOfBirth: "1950-01-01", Sex: "female"}
			if err := p.Validate(now); tt.singleLineOK {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, "patient.name")
			}
			err := rooms.CheckTransition(rooms.MSCC("RET"), []rooms.Party{rooms.PartyReferrer}, "draft", "cancelled", tt.s, nil)
			if tt.multiOK {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, "reason")
			}
		})
	}
}

func TestNamesNeedAVisibleLetter(t *testing.T) {
	tests := []struct {
		name string
		s    string
		ok   bool
	}{
		{"a letter", "J", true},
		{"letters around a soft hyphen", "Anne\u00admarie", true},
		{"only zero-width spaces", "\u200b\u200b", false},
		{"only a zero-width joiner and non-joiner", "\u200d\u200c", false},
		{"only word joiners", "\u2060\u2060", false},
		{"only a byte-order mark", "\ufeff", false},
		{"only soft hyphens", "\u00ad\u00ad", false},
		{"only a Hangul filler, a letter that shows nothing", "\u3164", false},
		{"only digits", "12345", false},
		{"only punctuation", "-- .", false},
		{"spaces around invisibles", "  \u200b  ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := rooms.NewUser{Name: tt.s, Email: "a@nhs.net", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "1234567",
				Organisation: "RET", Roles: []rooms.Role{rooms.RoleClinician}, Status: rooms.UserPending, PasswordHash: "x"}
			if err := n.Validate(); tt.ok {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, "name")
			}
			p := rooms.Patient{NHSNumber: "9434765919", Name: tt.s, DateOfBirth: "1950-01-01", Sex: "female"}
			if err := p.Validate(time.Now()); tt.ok {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, "patient.name")
			}
		})
	}
}

func TestCheckEmail(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"jane.doe@nhs.net", true},
		{"jane+triage@walton.nhs.uk", true},
		{"j@a-b.co", true},
		{"siân@bücher.de", true},
		{"a@b", false},
		{"@nhs.net", false},
		{"jane@", false},
		{"jane", false},
		{"jane@@nhs.net", false},
		{"ja@ne@nhs.net", false},
		{"jane doe@nhs.net", false},
		{"jane@nhs .net", false},
		{"jane@.nhs.net", false},
		{"jane@nhs..net", false},
		{"jane@nhs.net.", false},
		{"jane@-nhs.net", false},
		{"jane@nhs-.net", false},
		{"jane@nhs_trust.net", false},
		{"jane@10.0.0.1", false},
		{"jane\x00@nhs.net", false},
		{"jane@nhs.net\x00", false},
		{"jane\xff@nhs.net", false},
		{"jane\u202e@nhs.net", false},
		{"jane\u0085@nhs.net", false},
		{"jane\t@nhs.net", false},
		{strings.Repeat("a", 64) + "@nhs.net", true},
		{strings.Repeat("a", 65) + "@nhs.net", false},
		{"a@" + strings.Repeat("b", 63) + ".net", true},
		{"a@" + strings.Repeat("b", 64) + ".net", false},
		{longEmail(254), true},
		{longEmail(255), false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			if err := rooms.CheckEmail("email", tt.s); tt.ok {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, "email")
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		name, id string
		ok       bool
	}{
		{"a new id", rooms.NewID(), true},
		{"a UUID of another version", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", true},
		{"empty", "", false},
		{"upper case", "1B4E28BA-2FA1-4D2B-883F-0016D3CCA427", false},
		{"no hyphens", "1b4e28ba2fa14d2b883f0016d3cca427", false},
		{"braces", "{1b4e28ba-2fa1-4d2b-883f-0016d3cca42}", false},
		{"a NUL inside", "1b4e28ba-2fa1-4d2b-883f-0016d3cca4\x007", false},
		{"a NUL after", "1b4e28ba-2fa1-4d2b-883f-0016d3cca427\x00", false},
		{"invalid UTF-8", "1b4e28ba-2fa1-4d2b-883f-0016d3cca4\xff7", false},
		{"not hex", "1b4e28ba-2fa1-4d2b-883f-0016d3ccazzz", false},
		{"a word", "no-such-id", false},
		{"a path", "../../etc/passwd", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rooms.CheckID("id", tt.id); tt.ok {
				wantValid(t, err)
			} else {
				wantInvalid(t, err, "id")
			}
		})
	}
	for range 100 {
		if id := rooms.NewID(); rooms.CheckID("id", id) != nil {
			t.Fatalf("NewID() = %q is refused by CheckID", id)
		}
	}
}

// longEmail returns an address of n bytes (n at least 197) with labels of at
// most 63 bytes.
func longEmail(n int) string {
	head := "a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "."
	return head + strings.Repeat("e", n-len(head)-3) + ".uk"
}
