package codec

import (
	"encoding/hex"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// Test helpers shared by the internal and the black-box tests (exported to
// the latter in export_test.go).

// equalValue reports whether two normalised values are the same, types
// included; floats compare by bits (NaN payloads and the sign of zero count).
func equalValue(a, b any) bool { return core.Equal(a, b) }

var specialFloats = []float64{
	0, math.Copysign(0, -1), 1, -1.5, math.Inf(1), math.Inf(-1), math.NaN(),
	math.Float64frombits(0x7ff0000000000001), // signalling NaN
	math.Float64frombits(0xfff8000000000abc), // negative quiet NaN with payload
	math.SmallestNonzeroFloat64, math.MaxFloat64, 65504, 1e300,
}

// Lengths around the CBOR head-size boundaries.
var lengths = []int{0, 1, 5, 23, 24, 25, 255, 256, 300}

func randomString(r *rand.Rand) string {
	n := lengths[r.IntN(len(lengths))]
	if r.IntN(200) == 0 {
		n = 65536 // head of 5 bytes
	}
	var sb strings.Builder
	alphabet := []string{"a", "b", "z", "/", "é", "€", "𝄞", "\x00", " "}
	for sb.Len() < n {
		sb.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}

func randomInt(r *rand.Rand) int64 {
	v := int64(r.Uint64() >> (1 + r.IntN(64)))
	if r.IntN(2) == 0 {
		v = -v - 1
	}
	return v
}

type namedString string

// randomValue returns a random value nested at most maxDepth levels; with
// normal false it also uses types that core normalises (int, []string…).
func randomValue(r *rand.Rand, maxDepth int, normal bool) any {
	n := 14
	if maxDepth <= 1 {
		n = 10
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return randomInt(r)
	case 3:
		return r.Uint64() >> r.IntN(64)
	case 4:
		if r.IntN(3) == 0 {
			return math.Float64frombits(r.Uint64())
		}
		return specialFloats[r.IntN(len(specialFloats))]
	case 5:
		return randomString(r)
	case 6:
		return []byte(randomString(r))
	case 7:
		if normal {
			return randomInt(r)
		}
		switch r.IntN(6) {
		case 0:
			return int(randomInt(r))
		case 1:
			return int32(randomInt(r))
		case 2:
			return uint16(r.Uint32())
		case 3:
			return float32(r.NormFloat64())
		case 4:
			return namedString(randomString(r))
		}
		return uint(r.Uint64() >> 1)
	case 8:
		if normal {
			return randomString(r)
		}
		switch r.IntN(3) {
		case 0:
			return []string{randomString(r), randomString(r)}
		case 1:
			return map[string]int{randomString(r): int(randomInt(r))}
		}
		return []int64{randomInt(r)}
	case 9:
		return []any{}
	case 10, 11:
		l := make([]any, r.IntN(6))
		for i := range l {
			l[i] = randomValue(r, maxDepth-1, normal)
		}
		return l
	}
	m := make(map[string]any)
	for range r.IntN(6) {
		m[randomString(r)] = randomValue(r, maxDepth-1, normal)
	}
	return m
}

// randomValues returns random top-level values (non-empty keys).
func randomValues(r *rand.Rand, normal bool) map[string]any {
	m := make(map[string]any)
	for range r.IntN(5) {
		k := randomString(r)
		if k == "" {
			k = "k"
		}
		m[k] = randomValue(r, 4, normal)
	}
	return m
}

func unhexT(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
