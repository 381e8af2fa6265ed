package config

import (
	"fmt"
	"path"
)

// Presence configures what a topic's subscribers learn of each other.
type Presence struct {
	// Announce lists the topics (patterns as path.Match, e.g. "room.*")
	// whose subscribers receive a message when a connection joins or
	// leaves the topic. Empty announces none. Changes only with a restart.
	Announce []string `yaml:"announce"`
}

func (p Presence) validate() problems {
	var errs problems
	for i, pat := range p.Announce {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			errs.add(fmt.Sprintf("presence.announce[%d]", i), "%q is not a topic pattern (path.Match syntax)", pat)
		}
	}
	return errs
}

// Announces reports whether topic matches a pattern of Announce.
func (p Presence) Announces(topic string) bool {
	for _, pat := range p.Announce {
		if ok, _ := path.Match(pat, topic); ok {
			return true
		}
	}
	return false
}
