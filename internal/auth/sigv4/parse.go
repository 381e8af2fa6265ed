package sigv4

import (
	"fmt"
	"strings"
)

// authorization is a parsed SigV4 Authorization header (or presigned query).
type authorization struct {
	accessKey, date, region, service string
	signedHeaders                    []string // lower-case, as listed
	signature                        string   // lower-case hex
}

// parseAuthorization parses
//
//	AWS4-HMAC-SHA256 Credential=AKID/20240120/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// tolerating any spacing around the separators and any order of the three
// components; it refuses unknown or repeated components.
func parseAuthorization(h string) (*authorization, error) {
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != algorithm {
		return nil, fmt.Errorf("%w: want an %s Authorization header", ErrMalformed, algorithm)
	}
	a := &authorization{}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || seen[k] {
			return nil, fmt.Errorf("%w: Authorization component %q", ErrMalformed, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "Credential":
			err = a.setCredential(val)
		case "SignedHeaders":
			err = a.setSignedHeaders(val)
		case "Signature":
			if !validSignature(val) {
				err = fmt.Errorf("%w: signature is not 64 hex digits", ErrMalformed)
			}
			a.signature = strings.ToLower(val)
		default:
			err = fmt.Errorf("%w: unknown Authorization component %q", ErrMalformed, k)
		}
		if err != nil {
			return nil, err
		}
	}
	if !seen["Credential"] || !seen["SignedHeaders"] || !seen["Signature"] {
		return nil, fmt.Errorf("%w: Authorization needs Credential, SignedHeaders and Signature", ErrMalformed)
	}
	return a, nil
}

// setCredential parses AKID/yyyymmdd/region/service/aws4_request.
func (a *authorization) setCredential(v string) error {
	p := strings.Split(v, "/")
	if len(p) != 5 || p[0] == "" || p[2] == "" || p[3] == "" || p[4] != "aws4_request" || !digits(p[1], 8) {
		return fmt.Errorf("%w: credential scope", ErrMalformed)
	}
	a.accessKey, a.date, a.region, a.service = p[0], p[1], p[2], p[3]
	return nil
}

// setSignedHeaders parses a semicolon-separated list of lower-case names.
func (a *authorization) setSignedHeaders(v string) error {
	if v == "" {
		return fmt.Errorf("%w: no signed headers", ErrMalformed)
	}
	for name := range strings.SplitSeq(v, ";") {
		if name == "" || name != strings.ToLower(name) || strings.ContainsFunc(name, notTokenChar) {
			return fmt.Errorf("%w: signed header name %q", ErrMalformed, name)
		}
		a.signedHeaders = append(a.signedHeaders, name)
	}
	return nil
}

func validSignature(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// notTokenChar reports a character not allowed in an HTTP header name.
func notTokenChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
