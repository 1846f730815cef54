package password

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		pw   string
		want error
	}{
		{"eleven characters", "abcdefghijk", ErrTooShort},
		{"twelve characters", "tulip-kettle-9", nil},
		{"twelve code points, more bytes", "ééééééééééé1", nil},
		{"eleven code points in multibyte script", "ééééééééééé", ErrTooShort},
		{"129 characters", strings.Repeat("x", 128) + "y", ErrTooLong},
		{"128 characters", strings.Repeat("wren", 32), nil},
		{"common, lower case", "qwertyuiop123", ErrCommon},
		{"common, other case", "PassWordPassWord", ErrCommon},
		{"common digits", "123456789012", ErrCommon},
		{"passphrase", "ward round before lunch", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check(tc.pw); !errors.Is(err, tc.want) {
				t.Fatalf("Check(%q) = %v, want %v", tc.pw, err, tc.want)
			}
		})
	}
}

func TestCommonListIsLoaded(t *testing.T) {
	if n := len(common()); n < 2000 {
		t.Fatalf("common list has %d entries, want thousands", n)
	}
	if _, ok := common()["# common passwords refused at registration, one a line, lower case."]; ok {
		t.Fatal("comment line loaded as a password")
	}
}
