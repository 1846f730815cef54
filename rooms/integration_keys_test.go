package rooms_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"patientpass/rooms"
)

var b64 = base64.RawURLEncoding.EncodeToString

// ecJWK returns the public JWK of a new EC key on curve, as a client would
// send it.
func ecJWK(t *testing.T, kid string, curve elliptic.Curve) map[string]any {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	pt := pub.Bytes()[1:] // X || Y, after the uncompressed-point tag
	n := len(pt) / 2
	crv := map[elliptic.Curve]string{elliptic.P256(): "P-256", elliptic.P384(): "P-384", elliptic.P521(): "P-521"}[curve]
	return map[string]any{"kty": "EC", "kid": kid, "crv": crv, "x": b64(pt[:n]), "y": b64(pt[n:])}
}

// rsaJWK returns an RSA JWK whose modulus has bits bits: the domain checks
// sizes, not primes, so no key need be generated.
func rsaJWK(kid string, bits int) map[string]any {
	n := make([]byte, (bits+7)/8)
	_, _ = rand.Read(n)
	n[0] |= 0x80 >> ((8 - bits%8) % 8)
	n[0] &= 0xff >> ((8 - bits%8) % 8)
	return map[string]any{"kty": "RSA", "kid": kid, "n": b64(n), "e": "AQAB"}
}

func keySet(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func with(k map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for name, v := range k {
		out[name] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestCheckKeySet(t *testing.T) {
	ec := ecJWK(t, "ec-1", elliptic.P384())
	rsa := rsaJWK("rsa-1", 2048)
	many := make([]map[string]any, rooms.MaxIntegrationKeys+1)
	for i := range many {
		many[i] = with(ec, "kid", strings.Repeat("k", i+1))
	}
	// A bit of y changed takes the point off the curve: the only other y
	// for its x is p−y.
	y, _ := base64.RawURLEncoding.DecodeString(ec["y"].(string))
	y[47] ^= 1
	offCurve := with(ec, "y", b64(y))
	for _, c := range []struct {
		name  string
		jwks  []byte
		field string // "" when accepted
	}{
		{"an EC P-384 key", keySet(ec), ""},
		{"an RSA 2048 key", keySet(rsa), ""},
		{"an RSA 4096 key", keySet(rsaJWK("big", 4096)), ""},
		{"both, with alg and use", keySet(with(ec, "alg", "ES384", "use", "sig"), with(rsa, "alg", "RS384")), ""},
		{"ten keys", keySet(many[:rooms.MaxIntegrationKeys]...), ""},
		{"members the store drops", keySet(with(ec, "key_ops", []string{"verify"}, "ext", true)), ""},

		{"nothing", nil, "jwks"},
		{"null", []byte("null"), "jwks"},
		{"not JSON", []byte("{keys"), "jwks"},
		{"a lone key", mustJSON(ec), "jwks"},
		{"another member beside keys", []byte(`{"keys":[],"x":1}`), "jwks"},
		{"no keys", keySet(), "jwks.keys"},
		{"eleven keys", keySet(many...), "jwks.keys"},
		{"too large", []byte(`{"keys":[{"kty":"EC","kid":"` + strings.Repeat("a", rooms.MaxIntegrationJWKS) + `"}]}`), "jwks"},
		{"an EC private key", keySet(with(ec, "d", b64(make([]byte, 48)))), "jwks.keys[0].d"},
		{"an RSA private key", keySet(rsa, with(rsa, "kid", "rsa-2", "p", "AQAB")), "jwks.keys[1].p"},
		{"a symmetric key", keySet(map[string]any{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}), "jwks.keys[0].k"},
		{"no kid", keySet(with(ec, "kid", nil)), "jwks.keys[0].kid"},
		{"a kid that is not text", keySet(with(ec, "kid", "a\x00b")), "jwks.keys[0].kid"},
		{"a kid that is not a string", keySet(with(ec, "kid", 7)), "jwks.keys[0].kid"},
		{"two keys with one kid", keySet(ec, with(rsa, "kid", "ec-1")), "jwks.keys[1].kid"},
		{"no kty", keySet(with(ec, "kty", nil)), "jwks.keys[0].kty"},
		{"an OKP key", keySet(map[string]any{"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AAAA"}), "jwks.keys[0].kty"},
		{"an EC P-256 key", keySet(ecJWK(t, "p256", elliptic.P256())), "jwks.keys[0].crv"},
		{"an EC P-521 key", keySet(ecJWK(t, "p521", elliptic.P521())), "jwks.keys[0].crv"},
		{"an EC key for ES256", keySet(with(ec, "alg", "ES256")), "jwks.keys[0].alg"},
		{"an EC key for encryption", keySet(with(ec, "use", "enc")), "jwks.keys[0].use"},
		{"a point off the curve", keySet(offCurve), "jwks.keys[0]"},
		{"a short x", keySet(with(ec, "x", b64(make([]byte, 47)))), "jwks.keys[0].x"},
		{"x with padding", keySet(with(ec, "x", base64.URLEncoding.EncodeToString(make([]byte, 47)))), "jwks.keys[0].x"},
		{"an RSA 1024 key", keySet(rsaJWK("small", 1024)), "jwks.keys[0].n"},
		{"an RSA 2047 key", keySet(rsaJWK("small", 2047)), "jwks.keys[0].n"},
		{"an RSA 4097 key", keySet(rsaJWK("huge", 4097)), "jwks.keys[0].n"},
		{"an RSA key for RS256", keySet(with(rsa, "alg", "RS256")), "jwks.keys[0].alg"},
		{"an even exponent", keySet(with(rsa, "e", b64([]byte{1, 0, 0}))), "jwks.keys[0].e"},
		{"an exponent of 1", keySet(with(rsa, "e", b64([]byte{1}))), "jwks.keys[0].e"},
		{"no exponent", keySet(with(rsa, "e", nil)), "jwks.keys[0].e"},
		{"an RSA key with a curve", keySet(with(rsa, "crv", "P-384")), "jwks.keys[0]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stored, err := rooms.CheckKeySet("jwks", c.jwks)
			if c.field != "" {
				wantErr(t, err, rooms.CodeInvalid, c.field)
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			// What is stored is the keys' public members and nothing else.
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(stored, &set); err != nil {
				t.Fatalf("stored set is not JSON: %v", err)
			}
			for _, k := range set.Keys {
				for name := range k {
					if !strings.Contains(" kty kid use alg crv x y n e ", " "+name+" ") {
						t.Errorf("stored key keeps member %q", name)
					}
				}
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
