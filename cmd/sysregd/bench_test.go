package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/bench"
	"github.com/sysreg/sysreg/internal/fleet/fleettest"
)

// natsServer starts a NATS server with JetStream for "bench fleet --nats"
// (the appliance build has none in it) and stops it at the end of the test.
func natsServer(t *testing.T) string {
	t.Helper()
	srv, err := fleettest.NewServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.URL()
}

// tinyBench are flags that make every scenario take a fraction of a second.
var tinyBench = []string{
	"--producers", "2", "--subscribers", "10", "--interval", "20ms", "--duration", "100ms",
	"--writers", "1,2", "--sizes", "200", "--recovery-keys", "100", "--opens", "1",
	"--pipeline", "2", "--conns", "2", "--round-trips", "20", "--sub-conns", "2", "--flap-duration", "50ms",
	"--wear-updates", "20", "--wear-writers", "1,4", "--checkpoint-records", "50", "--checkpoint-keys", "20", "--day-hours", "0.1",
	"--devices", "5", "--pushes", "1", "--fleet-interval", "100ms", "--fleet-flap", "200ms",
}

func TestBenchCommandJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := append([]string{"bench", "all", "--json", "--dir", t.TempDir(), "--nats", natsServer(t)}, tinyBench...)
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var rep map[string]map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"machine", "flap", "durable", "recovery", "daemon", "wear", "fleet"} {
		if rep[k] == nil {
			t.Errorf("no %q in the JSON", k)
		}
	}
	flap := rep["flap"]
	for _, k := range []string{"sysreg", "baseline", "throughput_ratio", "subscribers", "interval_ms"} {
		if _, ok := flap[k]; !ok {
			t.Errorf("flap: no %q", k)
		}
	}
	if !strings.Contains(stderr.String(), "bench: flap") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
}

func TestBenchCommandTableAndSVG(t *testing.T) {
	var stdout, stderr bytes.Buffer
	svg := filepath.Join(t.TempDir(), "flap.svg")
	args := append([]string{"bench", "--svg", svg, "--quiet", "flap"}, tinyBench...)
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"flap:", "producer updates/s", "naive fan-out", "converge worst (ms)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet wrote to stderr: %q", stderr.String())
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("<svg")) || !bytes.Contains(data, []byte("polyline")) {
		t.Errorf("not an SVG plot: %.200s", data)
	}
}

func TestBenchCommandSweep(t *testing.T) {
	var stdout, stderr bytes.Buffer
	svg := filepath.Join(t.TempDir(), "sweep.svg")
	args := []string{"bench", "flap", "--sweep", "subs", "--sweep-subs", "3,30", "--duration", "100ms", "--interval", "20ms", "--svg", svg, "--quiet", "--core"}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"flap sweep:", "bare updates/s", "vs bare", "beyond MinInterval (ms)", "30 "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("subscribers (log scale)")) {
		t.Errorf("not the sweep plot: %.200s", data)
	}
}

func TestBenchCommandUsage(t *testing.T) {
	cases := []struct {
		args  []string
		usage bool // else the help, and no error (exit 0)
	}{
		{[]string{"bench", "--help"}, false},
		{[]string{"bench", "nonsense"}, true},
		{[]string{"bench", "flap", "durable"}, true},
		{[]string{"bench", "durable", "--svg", "x.svg"}, true},
		{[]string{"bench", "durable", "--writers", "1,x"}, true},
		{[]string{"bench", "wear", "--day-hours", "0"}, true},
		{[]string{"bench", "wear", "--wear-writers", "0"}, true},
		{[]string{"bench", "flap", "--subscribers", "0"}, true},
		{[]string{"bench", "flap", "--sweep", "producers"}, true},
		{[]string{"bench", "durable", "--sweep", "subs"}, true},
		{[]string{"bench", "flap", "--sweep", "subs", "--sweep-subs", "10,0"}, true},
		{[]string{"bench", "--no-such-flag"}, true},
		{[]string{"bench", "fleet", "--devices", "0"}, true},
		{[]string{"bench", "fleet", "--fleet-interval", "0s"}, true},
	}
	if !bench.InProcessNATS {
		// The appliance build has no NATS server in it.
		cases = append(cases, struct {
			args  []string
			usage bool
		}{[]string{"bench", "fleet"}, true})
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tc.args, &stdout, &stderr)
		var ue usageError
		switch {
		case tc.usage && !errors.As(err, &ue):
			t.Errorf("%q: err = %v, want a usage error", tc.args, err)
		case !tc.usage && err != nil:
			t.Errorf("%q: err = %v, want none (the help)", tc.args, err)
		case !tc.usage && !strings.Contains(stdout.String(), "-subscribers"):
			t.Errorf("%q: help lacks the flags:\n%s", tc.args, stdout.String())
		}
	}
}
