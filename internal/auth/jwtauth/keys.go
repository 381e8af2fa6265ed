package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// allowedAlgs are the only signing algorithms accepted: asymmetric ones whose
// verification key can be published. "none" and the HMAC family are refused,
// so a public key can never be used as a shared secret.
var allowedAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"}

// minRSABits is the smallest RSA modulus accepted for a verification key.
const minRSABits = 2048

// key is one verification key.
type key struct {
	kid string // empty: the key is tried for any token whose kid has no key of its own
	alg string // the JWK's "alg"; empty: any algorithm that fits the key type
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable list of keys; a refresh replaces it whole.
type keySet []key

// find returns the keys that may verify a token with this kid and alg, and
// whether some key carries that kid at all.
func (ks keySet) find(kid, alg string) (keys []any, kidKnown bool) {
	for _, k := range ks {
		if kid != "" && k.kid == kid {
			kidKnown = true
		}
		if kid != "" && k.kid != "" && k.kid != kid {
			continue
		}
		if (k.alg == "" || k.alg == alg) && fits(k.pub, alg) {
			keys = append(keys, k.pub)
		}
	}
	return keys, kidKnown
}

// fits reports whether alg is verified with keys of pub's type and curve.
func fits(pub any, alg string) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "RS384" || alg == "RS512"
	case *ecdsa.PublicKey:
		return alg == "ES256" && p.Curve == elliptic.P256() || alg == "ES384" && p.Curve == elliptic.P384()
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// checkKey refuses key types and sizes the authorizer never verifies with.
func checkKey(pub any) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits, want at least %d", p.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() && p.Curve != elliptic.P384() {
			return fmt.Errorf("EC curve %s, want P-256 or P-384", p.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// parsePEM reads every PEM block of s: public keys (PKIX or PKCS #1) and
// certificates. A private key is refused: it has no place in a verifier's
// configuration.
func parsePEM(s, kid string) (keySet, error) {
	var ks keySet
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %w", b.Type, err)
		}
		if err := checkKey(pub); err != nil {
			return nil, fmt.Errorf("PEM block %q: %w", b.Type, err)
		}
		ks = append(ks, key{kid: kid, pub: pub})
	}
	if len(ks) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return ks, nil
}

// jwk is the subset of RFC 7517/7518/8037 members the authorizer reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWK Set. Keys the authorizer cannot use (encryption
// keys, symmetric keys, unknown types or curves, short RSA moduli, algorithms
// outside allowedAlgs) are skipped, not fatal: identity providers publish
// such keys next to their signing keys.
func parseJWKS(data []byte) (keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New("decode JWKS: no \"keys\" member")
	}
	ks := make(keySet, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		var j jwk
		if json.Unmarshal(raw, &j) != nil || (j.Use != "" && j.Use != "sig") {
			continue
		}
		if j.Alg != "" && !algAllowed(j.Alg) {
			continue
		}
		pub, err := j.publicKey()
		if err != nil || checkKey(pub) != nil {
			continue
		}
		ks = append(ks, key{kid: j.Kid, alg: j.Alg, pub: pub})
	}
	return ks, nil
}

func algAllowed(alg string) bool {
	for _, a := range allowedAlgs {
		if a == alg {
			return true
		}
	}
	return false
}

func (j *jwk) publicKey() (any, error) {
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, errors.New("RSA exponent out of range")
		}
		exp := new(big.Int).SetBytes(e).Int64()
		if exp < 3 || exp%2 == 0 {
			return nil, errors.New("RSA exponent out of range")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}, nil
	case "EC":
		var c elliptic.Curve
		switch j.Crv {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		default:
			return nil, fmt.Errorf("EC curve %q", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		size := (c.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("EC coordinate of the wrong length")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		return ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, x...), y...))
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q", j.Crv)
		}
		x, err := b64(j.X)
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 key of the wrong length")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("key type %q", j.Kty)
}

func b64(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("missing key member")
	}
	return base64.RawURLEncoding.DecodeString(s)
}
