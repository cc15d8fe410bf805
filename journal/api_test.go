package journal_test

import (
	"reflect"
	"testing"

	"github.com/sysreg/sysreg/journal"
)

// TestOptionsCarryNoTestHooks: fault injection is test plumbing and stays
// out of the exported API (issue #8 item 15): no exported field of Options,
// or of a struct inside it, holds a function.
func TestOptionsCarryNoTestHooks(t *testing.T) {
	if f := exportedFuncField(reflect.TypeFor[journal.Options](), "Options"); f != "" {
		t.Errorf("%s is an exported function field: test hooks belong in internal/faults", f)
	}
}

func exportedFuncField(typ reflect.Type, path string) string {
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Func:
			return path + "." + f.Name
		case reflect.Struct:
			if s := exportedFuncField(f.Type, path+"."+f.Name); s != "" {
				return s
			}
		}
	}
	return ""
}
