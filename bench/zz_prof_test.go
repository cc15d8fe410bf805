package bench_test

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sysreg/sysreg/bench"
)

func TestZZProf(t *testing.T) {
	subs, _ := strconv.Atoi(os.Getenv("SUBS"))
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r, err := bench.RunFlap(t.Context(), bench.FlapConfig{Subscribers: subs, NoBaseline: true, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := r.Sysreg
	runtime.ReadMemStats(&m1)
	t.Logf("gcs=%d pause=%v alloc=%dMB", m1.NumGC-m0.NumGC, time.Duration(m1.PauseTotalNs-m0.PauseTotalNs), (m1.TotalAlloc-m0.TotalAlloc)>>20)
	t.Logf("subs=%d updates/s=%.0f conv=%.1fms dels=%.1f windows=%.1f B/sub=%.0f cpu=%.2f", subs, s.UpdatesPerSec, s.ConvergeMs.Max, s.Deliveries.Max, s.Windows, s.HeapPerSub, s.CPUSeconds)
}
