package events

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// onlyOf accepts exactly what the name and queue patterns it replaced
// accept, on random strings over a mixed alphabet and on edge cases.
func TestOnlyOfMatchesThePatterns(t *testing.T) {
	patterns := map[string]*regexp.Regexp{
		nameExtra:  regexp.MustCompile(`^[A-Za-z0-9._:/-]+$`),
		queueExtra: regexp.MustCompile(`^[A-Za-z0-9._-]+$`),
	}
	alphabet := []byte("aZz09._:/-@ \x00\x7f\xc3\xa9+|" + "`[{")
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := []string{"", "a", "é", "a b", "A-Z_0.9:x/y", "\xff", "\n"}
	for range 20000 {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for extra, re := range patterns {
		for _, in := range inputs {
			if got, want := onlyOf(in, extra), re.MatchString(in); got != want {
				t.Fatalf("onlyOf(%q, %q) = %v, the pattern %s says %v", in, extra, got, re, want)
			}
		}
	}
}
