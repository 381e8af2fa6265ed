// Command mint prints a JSON Web Token signed with the example's test-only
// key, for trying the JWT authorizer example.
package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	keyFile := flag.String("key", "examples/jwt-authorizer/example-key.pem", "ES256 private key (PKCS #8 PEM)")
	kid := flag.String("kid", "example-es256", "the key's kid in jwks.json")
	sub := flag.String("sub", "alice", "the subject: the connection's principal")
	iss := flag.String("iss", "https://auth.example.com", "the issuer")
	aud := flag.String("aud", "switchboard-example", "the audience")
	ttl := flag.Duration("ttl", time.Hour, "how long the token is valid; negative: already expired")
	flag.Parse()
	tok, err := mint(*keyFile, *kid, *sub, *iss, *aud, *ttl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mint:", err)
		os.Exit(1)
	}
	fmt.Println(tok)
}

func mint(keyFile, kid, sub, iss, aud string, ttl time.Duration) (string, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", keyFile, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return "", errors.New(keyFile + ": not an ECDSA key")
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": sub, "iss": iss, "aud": aud,
		"iat": now.Add(min(ttl, 0) - time.Minute).Unix(),
		"exp": now.Add(ttl).Unix(),
	})
	t.Header["kid"] = kid
	return t.SignedString(ec)
}
