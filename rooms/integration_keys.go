package rooms

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// The bounds of an integrator's key set. A client rotates keys by
// registering the next one beside the current, so a few suffice; the bounds
// keep what every token request parses small. RSA keys above 4096 bits only
// make each verification slower, and the JOSE library the token endpoint
// verifies with refuses them.
const (
	MaxIntegrationKeys   = 10
	MaxIntegrationJWKS   = 64 << 10 // bytes of the key set as sent
	minIntegrationRSABit = 2048
	maxIntegrationRSABit = 4096
	maxKeyIDLen          = 100
)

// privateKeyMembers are the JWK members that hold private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4.1). A client registers only what
// verifies its signatures; a set holding any of them was copied from the
// wrong file, and its owner must be told rather than have it stored.
var privateKeyMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicJWK is a key as it is stored: the members that identify and verify,
// nothing else, so that what the token endpoint parses is exactly what was
// checked here.
type publicJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// CheckKeySet checks an integrator's JSON Web Key Set (RFC 7517) and returns
// it as it is stored: {"keys":[…]} with, for each key, only the members
// that identify it and verify with it. Each key must be an EC P-384 key
// (ES384) or an RSA key of 2048 to 4096 bits (RS384), public, with a kid of
// its own. Every refusal names the field (jwks.keys[2].crv).
//
// The keys are checked with the standard library alone (the point on its
// curve, the modulus's size): the domain holds no JOSE library, and the
// token endpoint that verifies signatures parses the stored set with one.
func CheckKeySet(field string, raw []byte) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, Invalid(field, `the key set is required: {"keys":[…]} with the client's public keys`)
	}
	if len(raw) > MaxIntegrationJWKS {
		return nil, Invalid(field, "the key set is larger than %d KiB", MaxIntegrationJWKS>>10)
	}
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		return nil, Invalid(field, `the key set must be a JSON Web Key Set: {"keys":[{…},…]} and nothing else`)
	}
	if len(set.Keys) == 0 {
		return nil, Invalid(field+".keys", "the key set needs at least one public key")
	}
	if len(set.Keys) > MaxIntegrationKeys {
		return nil, Invalid(field+".keys", "a key set holds at most %d keys", MaxIntegrationKeys)
	}
	out := make([]publicJWK, len(set.Keys))
	kids := make(map[string]bool, len(set.Keys))
	for i, members := range set.Keys {
		at := fmt.Sprintf("%s.keys[%d]", field, i)
		k, err := checkJWK(at, members)
		if err != nil {
			return nil, err
		}
		if kids[k.Kid] {
			return nil, Invalid(at+".kid", "two keys share the kid %q: each key needs a kid of its own", k.Kid)
		}
		kids[k.Kid] = true
		out[i] = k
	}
	stored, err := json.Marshal(struct {
		Keys []publicJWK `json:"keys"`
	}{out})
	if err != nil {
		return nil, fmt.Errorf("encode key set: %w", err)
	}
	return stored, nil
}

// checkJWK checks one key of a set; at names it (jwks.keys[0]).
func checkJWK(at string, members map[string]json.RawMessage) (publicJWK, error) {
	for _, m := range privateKeyMembers {
		if _, ok := members[m]; ok {
			return publicJWK{}, Invalid(at+"."+m, "this is private key material: register only the public key, and keep the private key with the client")
		}
	}
	var k publicJWK
	str := func(name string, dst *string) error {
		v, ok := members[name]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return Invalid(at+"."+name, "%s must be a string", name)
		}
		return nil
	}
	for _, m := range []struct {
		name string
		dst  *string
	}{{"kty", &k.Kty}, {"kid", &k.Kid}, {"use", &k.Use}, {"alg", &k.Alg},
		{"crv", &k.Crv}, {"x", &k.X}, {"y", &k.Y}, {"n", &k.N}, {"e", &k.E}} {
		if err := str(m.name, m.dst); err != nil {
			return publicJWK{}, err
		}
	}
	switch {
	case k.Kid == "":
		return publicJWK{}, Invalid(at+".kid", "each key needs a kid: the client names it in the header of every assertion it signs")
	case len(k.Kid) > maxKeyIDLen || !isCleanText(k.Kid):
		return publicJWK{}, Invalid(at+".kid", "a kid is at most %d characters of text", maxKeyIDLen)
	case k.Use != "" && k.Use != "sig":
		return publicJWK{}, Invalid(at+".use", `use must be "sig": the key verifies the client's signatures`)
	}
	switch k.Kty {
	case "EC":
		return k, checkECKey(at, k)
	case "RSA":
		return k, checkRSAKey(at, k)
	case "":
		return publicJWK{}, Invalid(at+".kty", "kty is required: EC (P-384, for ES384) or RSA (for RS384)")
	default:
		return publicJWK{}, Invalid(at+".kty", "only EC (P-384, for ES384) and RSA (for RS384) keys are accepted")
	}
}

func checkECKey(at string, k publicJWK) error {
	if k.Alg != "" && k.Alg != "ES384" {
		return Invalid(at+".alg", "an EC key signs with ES384")
	}
	if k.Crv != "P-384" {
		return Invalid(at+".crv", "an EC key must be on the P-384 curve (ES384)")
	}
	if k.N != "" || k.E != "" {
		return Invalid(at, "an EC key has no n or e")
	}
	x, errX := base64.RawURLEncoding.Strict().DecodeString(k.X)
	y, errY := base64.RawURLEncoding.Strict().DecodeString(k.Y)
	if errX != nil || len(x) != 48 {
		return Invalid(at+".x", "x must be the 48 bytes of a P-384 coordinate, base64url without padding")
	}
	if errY != nil || len(y) != 48 {
		return Invalid(at+".y", "y must be the 48 bytes of a P-384 coordinate, base64url without padding")
	}
	point := append(append([]byte{4}, x...), y...)
	if _, err := ecdh.P384().NewPublicKey(point); err != nil {
		return Invalid(at, "x and y are not a point on the P-384 curve")
	}
	return nil
}

func checkRSAKey(at string, k publicJWK) error {
	if k.Alg != "" && k.Alg != "RS384" {
		return Invalid(at+".alg", "an RSA key signs with RS384")
	}
	if k.Crv != "" || k.X != "" || k.Y != "" {
		return Invalid(at, "an RSA key has no crv, x or y")
	}
	nb, err := base64.RawURLEncoding.Strict().DecodeString(k.N)
	if err != nil || len(nb) == 0 {
		return Invalid(at+".n", "n must be the key's modulus, base64url without padding")
	}
	if bits := new(big.Int).SetBytes(nb).BitLen(); bits < minIntegrationRSABit || bits > maxIntegrationRSABit {
		return Invalid(at+".n", "an RSA key must have %d to %d bits; this one has %d", minIntegrationRSABit, maxIntegrationRSABit, bits)
	}
	eb, err := base64.RawURLEncoding.Strict().DecodeString(k.E)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return Invalid(at+".e", "e must be the key's public exponent, base64url without padding")
	}
	e := new(big.Int).SetBytes(eb)
	// Verifiers take e as a positive int below 2^31; an even exponent is no
	// RSA key.
	if e.Cmp(big.NewInt(3)) < 0 || e.BitLen() > 31 || e.Bit(0) == 0 {
		return Invalid(at+".e", "e must be an odd public exponent of at least 3 (usually AQAB, 65537)")
	}
	return nil
}
