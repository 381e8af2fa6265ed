package jwtauth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// SubprotocolMarker is the Sec-WebSocket-Protocol entry that announces a
// token in the entry after it (see Options.TokenSources).
const SubprotocolMarker = "bearer"

type sourceKind int

const (
	sourceHeader sourceKind = iota
	sourceQuery
	sourceSubprotocol
)

// source is one parsed entry of Options.TokenSources.
type source struct {
	kind sourceKind
	name string // header or query parameter name; empty for sourceSubprotocol
}

func parseSources(specs []string) ([]source, error) {
	out := make([]source, 0, len(specs))
	for _, s := range specs {
		kind, name, _ := strings.Cut(s, ":")
		switch {
		case strings.EqualFold(kind, "header") && name != "":
			out = append(out, source{sourceHeader, http.CanonicalHeaderKey(name)})
		case strings.EqualFold(kind, "query") && name != "":
			out = append(out, source{sourceQuery, name})
		case strings.EqualFold(s, "subprotocol"):
			out = append(out, source{sourceSubprotocol, ""})
		default:
			return nil, fmt.Errorf("jwtauth: token source %q: want header:NAME, query:NAME or subprotocol", s)
		}
	}
	return out, nil
}

// extractToken returns the token of the first source that has one and, when
// that source is the subprotocol, the subprotocol to accept.
func extractToken(sources []source, h http.Header, q url.Values) (token, subprotocol string) {
	for _, s := range sources {
		switch s.kind {
		case sourceHeader:
			token = bearer(h.Get(s.name))
		case sourceQuery:
			token = strings.TrimSpace(q.Get(s.name))
		case sourceSubprotocol:
			token, subprotocol = fromSubprotocols(offeredProtocols(h))
		}
		if token != "" {
			return token, subprotocol
		}
	}
	return "", ""
}

// bearer strips an optional "Bearer " scheme (any case) and surrounding space.
func bearer(v string) string {
	v = strings.TrimSpace(v)
	const scheme = "bearer "
	if len(v) >= len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) {
		v = strings.TrimSpace(v[len(scheme):])
	}
	return v
}

// offeredProtocols lists the client's Sec-WebSocket-Protocol entries in
// order, over every header line.
func offeredProtocols(h http.Header) []string {
	var out []string
	for _, line := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(line, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// fromSubprotocols applies the convention documented on
// Options.TokenSources: the entry after the marker, else the first entry
// shaped like a JWT; the subprotocol to accept is the first other entry, else
// the marker, else the token itself.
func fromSubprotocols(offered []string) (token, accept string) {
	marker := -1
	for i, p := range offered {
		if strings.EqualFold(p, SubprotocolMarker) && i+1 < len(offered) {
			marker, token = i, offered[i+1]
			break
		}
	}
	if marker < 0 {
		for _, p := range offered {
			if looksLikeJWT(p) {
				token = p
				break
			}
		}
	}
	if token == "" {
		return "", ""
	}
	for _, p := range offered {
		if p != token && !strings.EqualFold(p, SubprotocolMarker) {
			return token, p
		}
	}
	if marker >= 0 {
		return token, offered[marker]
	}
	return token, token
}

// looksLikeJWT reports whether p has a compact JWS's shape: three
// dot-separated segments, the first starting as base64url of `{"` does. The
// prefix keeps dotted protocol names such as "v1.chat.example" out.
func looksLikeJWT(p string) bool {
	return strings.HasPrefix(p, "eyJ") && strings.Count(p, ".") == 2
}
