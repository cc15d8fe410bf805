package codec_test

import (
	"bytes"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// The baseline of the benchmarks is fxamacker/cbor used the way the issue
// suggested: the record decoded into typed structs with the values as raw
// bytes, then the values decoded into any. The bytes are the same:
// fxRecord and fxOp describe a record of merge ops exactly.

type fxOp struct {
	_       struct{} `cbor:",toarray"`
	Kind    uint8
	Bucket  uint8
	Layer   uint8
	Type    string
	Subtype string
	Owner   string
	Values  cbor.RawMessage
}

type fxRecord struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	Seq     uint64
	Time    int64
	Ops     []fxOp
	Binds   []fxBind
}

type fxBind struct {
	_    struct{} `cbor:",toarray"`
	Name string
	UID  uint32
}

func fxEncodeMutation(tb testing.TB, m *core.Mutation) []byte {
	r := fxRecord{Version: 3, Seq: m.Seq, Binds: []fxBind{}}
	for _, b := range m.Binds {
		r.Binds = append(r.Binds, fxBind{Name: b.Name, UID: b.UID})
	}
	if !m.Time.IsZero() {
		r.Time = m.Time.UnixNano()
	}
	for _, op := range m.Ops {
		vals, err := fxEnc.Marshal(toFx(map[string]any(op.Values)))
		if err != nil {
			tb.Fatal(err)
		}
		r.Ops = append(r.Ops, fxOp{Kind: 1, Bucket: uint8(op.Scope.Bucket), Layer: uint8(op.Layer), Type: op.Scope.Type,
			Subtype: op.Scope.Subtype, Owner: op.Owner, Values: vals})
	}
	b, err := fxEnc.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func fxDecodeMutation(tb testing.TB, b []byte) {
	var r fxRecord
	if err := fxDec.Unmarshal(b, &r); err != nil {
		tb.Fatal(err)
	}
	for _, op := range r.Ops {
		var v map[string]any
		if err := fxDec.Unmarshal(op.Values, &v); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestRecordMatchesReference: a record of merge ops is byte for byte what
// fxamacker writes for the same structure.
func TestRecordMatchesReference(t *testing.T) {
	m := typicalRecord()
	m.Ops = append(m.Ops, core.MutationOp{Kind: core.MutMerge, Layer: core.Runtime, Scope: core.ConfigScope("wifi", "wlan0"),
		Owner: "wifid", Values: core.Values{"ssid": "home", "n": uint64(1 << 63), "f": []any{0.1, nil}}})
	m.Binds = []core.Bind{{Name: "netd", UID: 1000}, {Name: "wifid", UID: 70000}}
	got, err := codec.EncodeMutation(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := fxEncodeMutation(t, m); !bytes.Equal(got, want) {
		t.Fatalf("codec     %x\nreference %x", got, want)
	}
}

func BenchmarkEncodeMutation(b *testing.B) {
	m := typicalRecord()
	b.Run("impl=codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.EncodeMutation(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=fxamacker", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fxEncodeMutation(b, m)
		}
	})
}

func BenchmarkDecodeMutation(b *testing.B) {
	data, err := codec.EncodeMutation(typicalRecord())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("impl=codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.DecodeMutation(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=fxamacker", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fxDecodeMutation(b, data)
		}
	})
}

func BenchmarkValue(b *testing.B) {
	v := goldenValue()
	data, err := codec.EncodeValue(v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("op=encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := codec.EncodeValue(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := codec.DecodeValue(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSnapshot: a checkpoint of 1,000 scopes of 10 keys each.
func BenchmarkSnapshot(b *testing.B) {
	var ops []core.MutationOp
	for i := range 1000 {
		vals := core.Values{}
		for k := range 10 {
			vals[string(rune('a'+k))] = map[string]any{"n": int64(i), "s": "some text"}
		}
		ops = append(ops, core.MutationOp{Kind: core.MutSet, Layer: core.Runtime, Scope: core.ConfigScope("type", string(rune(0x100+i))),
			Owner: "owner", Values: vals})
	}
	s, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 1, Ops: ops})
	if err != nil {
		b.Fatal(err)
	}
	data, err := codec.EncodeSnapshot(s, core.Config)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("op=encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := codec.EncodeSnapshot(s, core.Config); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := codec.DecodeSnapshot(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
