package password

import (
	"strings"
	"testing"
)

func TestHashAndVerify(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the OWASP parameters", h)
	}
	ok, rehash, err := Verify("correct horse battery staple", h)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, _, err = Verify("correct horse battery stapLe", h)
	if err != nil || ok {
		t.Fatalf("Verify(wrong) = %v, %v; want false, nil", ok, err)
	}
	h2, _ := Hash("correct horse battery staple")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

func TestVerifyAsksForRehashWhenParametersChange(t *testing.T) {
	h, err := HashWith(Params{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}, "an older hash")
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := Verify("an older hash", h)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

func TestVerifyRefusesMalformedHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=x$c2FsdA$a2V5", "$argon2id$v=19$m=1,t=1,p=0$c2FsdA$a2V5"} {
		if ok, _, err := Verify("pw", h); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want false and an error", h, ok, err)
		}
	}
}
