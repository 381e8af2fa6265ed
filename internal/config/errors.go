package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Error is one problem of a configuration: where it is, which key, and what
// is wrong, with the form expected. It matches ErrInvalid with errors.Is.
// Load and Validate return one Error per problem, joined with errors.Join,
// so that each prints on a line of its own:
//
//	switchboard.yaml:12: limits.maxMessageBytes: expected a size such as 131072, 128KiB or unlimited, got "big"
type Error struct {
	// File is the configuration file as it was given; empty when the value
	// did not come from a file (flags, the environment, a Config built in code).
	File string
	// Line is the line in File of the key, or of its nearest parent present
	// in the file; 0 when unknown.
	Line int
	// Path is the key's YAML path, such as limits.maxMessageBytes or
	// authorizers.jwt.pemFiles[0]; empty for the document as a whole.
	Path string
	// Msg says what is wrong and what is expected.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is reports whether target is ErrInvalid: every Error is a validation error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Errors returns the Errors in err (one, or several joined), in order; nil
// when err holds none.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		var e *Error
		switch x := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, err := range x.Unwrap() {
				walk(err)
			}
		default:
			if errors.As(err, &e) {
				out = append(out, e)
			}
		}
	}
	walk(err)
	return out
}

// joinErrors joins errs sorted by line, then path, so that a file's problems
// read from top to bottom.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path))
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// Suggest returns the candidate nearest to word, for "did you mean": one
// that differs only in case, "-" or "_", or within a third of word's length
// in edits; empty when none is that near.
func Suggest(word string, candidates []string) string {
	norm := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '-' || r == '_' {
				return -1
			}
			return unicode.ToLower(r)
		}, s)
	}
	w := norm(word)
	best, bestDist := "", max(1, len([]rune(w))/3)+1
	for _, c := range candidates {
		if c == word {
			continue
		}
		if d := editDistance(w, norm(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// didYouMean is "; did you mean X?" when a candidate is near word, else "".
func didYouMean(word string, candidates []string) string {
	if s := Suggest(word, candidates); s != "" {
		return fmt.Sprintf("; did you mean %s?", s)
	}
	return ""
}
