package identity

import (
	"strings"
	"sync"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
)

// The match form (identity version 2): what is left of a name when
// everything its writer controls but its meaning is taken away, so that a
// failed product re-declared with a character nobody sees, a look-alike
// letter, missing tone marks, a trailing period or an added legal form is
// still the same goods. Keys hash the match form; records show the
// display form (Canonical), which stays readable.
//
// In order:
//  1. drop Unicode format characters (Cf: zero-width spaces and joiners,
//     soft hyphens, word joiners, byte-order marks, direction marks),
//     variation selectors, and symbols (™, ®, ©: category S);
//  2. drop punctuation (category P) inside words ("Co-operative" is
//     "Cooperative", "Co." is "Co"), and read it as a space between them;
//  3. NFKC: compatibility forms (fullwidth letters, ligatures) become
//     their plain letters;
//  4. strip every combining mark after NFD, and đ/Đ to d: Vietnamese with
//     and without tone marks compares equal;
//  5. case folding, then the Unicode TR39 confusables skeleton (Cyrillic
//     "а" for Latin "a", "0" for "O", "rn" for "m"), folded again;
//  6. white space collapsed.
//
// The skeleton uses Unicode's own confusables data through
// github.com/mtibben/confusables (TR39's mapping, not a hand list).

// MatchText is the match form of a name.
func MatchText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	prevLetter := false
	for i, r := range s {
		switch {
		case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Variation_Selector, r), unicode.IsSymbol(r):
			continue
		case unicode.IsPunct(r):
			// Inside a word ("Co-op", "Co.Ltd") it joins; elsewhere it is a
			// space (a trailing period, "Fonterra, Ltd").
			next := nextRune(s[i+len(string(r)):])
			if !(prevLetter && (unicode.IsLetter(next) || unicode.IsDigit(next))) {
				b.WriteByte(' ')
				prevLetter = false
			}
			continue
		}
		b.WriteRune(r)
		prevLetter = unicode.IsLetter(r) || unicode.IsDigit(r)
	}
	t := norm.NFKD.String(b.String())
	b.Reset()
	for _, r := range t {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'đ' || r == 'Đ':
			r = 'd'
		}
		b.WriteRune(r)
	}
	t = folder.String(norm.NFC.String(b.String()))
	t = folder.String(confusables.Skeleton(t))
	return strings.Join(strings.FieldsFunc(t, unicode.IsSpace), " ")
}

func nextRune(s string) rune {
	for _, r := range s {
		return r
	}
	return 0
}

// legalForms are words that say what kind of company a manufacturer is,
// not which one: an added "Ltd" or "Công ty TNHH" does not make another
// manufacturer. Vietnamese forms spelled out are phrases (legalPhrases),
// so their words are not dropped from other names. Both are compared in
// match form (the skeleton writes "lirnited" for "limited").
func legalForms() map[string]bool {
	words := []string{"co", "company", "ltd", "limited", "llc", "inc", "incorporated", "corp", "corporation", "jsc", "plc",
		"pte", "pty", "gmbh", "ag", "sa", "sas", "srl", "spa", "bv", "nv", "kk", "cooperative", "coop", "group", "holdings",
		// Vietnamese abbreviations: TNHH (limited liability), CP
		// (joint-stock), HTX (cooperative).
		"tnhh", "cp", "htx"}
	out := make(map[string]bool, len(words))
	for _, w := range words {
		out[MatchText(w)] = true
	}
	return out
}

// legalPhrases are Vietnamese legal forms spelled out: công ty (company),
// trách nhiệm hữu hạn (limited liability), cổ phần (joint-stock), hợp tác
// xã (cooperative).
func legalPhrases() []string {
	out := []string{}
	for _, p := range []string{"công ty", "trách nhiệm hữu hạn", "cổ phần", "hợp tác xã"} {
		out = append(out, " "+MatchText(p)+" ")
	}
	return out
}

// MatchManufacturer is the match form of a manufacturer's name without its
// legal form. A name that is nothing but legal-form words keeps them.
func MatchManufacturer(name string) string {
	all := MatchText(name)
	padded := " " + all + " "
	for _, p := range legal().phrases {
		padded = strings.ReplaceAll(padded, p, " ")
	}
	forms := legal().forms
	var kept []string
	for _, w := range strings.Fields(padded) {
		if !forms[w] {
			kept = append(kept, w)
		}
	}
	if len(kept) == 0 {
		return all
	}
	return strings.Join(kept, " ")
}

// legal is the legal forms in match form, made once (a constant table,
// computed because the skeleton decides its spelling).
var legal = sync.OnceValue(func() struct {
	forms   map[string]bool
	phrases []string
} {
	return struct {
		forms   map[string]bool
		phrases []string
	}{legalForms(), legalPhrases()}
})

// keyText is a match form as a key hashes it: without its spaces, so that
// "nguyên-kem", "nguyên kem" and "nguyênkem" are one name.
func keyText(match string) string { return strings.ReplaceAll(match, " ", "") }

// Similarity is the share of words two names have in common, in match
// form (Jaccard over word sets): word order and an added word move it
// little, another product of the same maker a lot. 1 for two empty names.
func Similarity(a, b string) float64 { return MatchSimilarity(MatchText(a), MatchText(b)) }

// MatchSimilarity is Similarity of two names already in match form.
func MatchSimilarity(a, b string) float64 {
	wa, wb := strings.Fields(a), strings.Fields(b)
	if len(wa) == 0 && len(wb) == 0 {
		return 1
	}
	set := map[string]int{}
	for _, w := range wa {
		set[w] |= 1
	}
	for _, w := range wb {
		set[w] |= 2
	}
	both := 0
	for _, v := range set {
		if v == 3 {
			both++
		}
	}
	return float64(both) / float64(len(set))
}

// ResemblanceGroup is the group new goods are compared within: one
// manufacturer (match form, without its legal form), HS heading and
// origin. Resemblance never crosses a manufacturer, a heading or a country.
func ResemblanceGroup(g Goods) Key {
	return HashKey("ktcn/resemblance/v1", keyText(MatchManufacturer(g.Manufacturer)), heading(HSDigits(g.HSCode)),
		strings.ToUpper(strings.TrimSpace(g.Origin)))
}
