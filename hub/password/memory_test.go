package password

import (
	"bufio"
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// burst is how many hashes BenchmarkConcurrentHashMemory starts at once.
const burst = 200

// BenchmarkConcurrentHashMemory starts 200 hashes at once, unbounded and
// through limiters, and reports the peak heap in use (sampled), the heap
// reserved from the OS, and the process's peak resident size. These are
// measurements, not assertions. Run one variant per process, so that one's
// heap does not carry into the next:
//
//	go test -run '^$' -bench 'ConcurrentHashMemory/unlimited$' -benchtime 1x ./hub/password/
func BenchmarkConcurrentHashMemory(b *testing.B) {
	b.Run("unlimited", func(b *testing.B) {
		measureBurst(b, func(ctx context.Context) error { _, err := Hash("a burst of registrations"); return err })
	})
	b.Run("limit=default,queue=all", func(b *testing.B) {
		l := NewLimiter(DefaultConcurrency(), burst, time.Hour)
		measureBurst(b, func(ctx context.Context) error { _, err := l.HashCtx(ctx, "a burst of registrations"); return err })
	})
	b.Run("limit=default,queue=default", func(b *testing.B) {
		l := NewDefaultLimiter()
		measureBurst(b, func(ctx context.Context) error { _, err := l.HashCtx(ctx, "a burst of registrations"); return err })
	})
}

// measureBurst runs hash from burst goroutines at once, b.N times, and
// reports memory peaks and how many were refused with ErrBusy.
func measureBurst(b *testing.B, hash func(context.Context) error) {
	debug.FreeOSMemory()
	resetPeakRSS(b)
	var (
		peakInuse atomic.Uint64
		busy      atomic.Int64
		stop      = make(chan struct{})
		sampled   = make(chan struct{})
	)
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakInuse.Load() {
				peakInuse.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() {
				err := hash(context.Background())
				switch {
				case errors.Is(err, ErrBusy):
					busy.Add(1)
				case err != nil:
					b.Errorf("hash: %v", err)
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	close(stop)
	<-sampled
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	const mib = 1 << 20
	b.ReportMetric(float64(peakInuse.Load())/mib, "peak-heap-inuse-MiB")
	b.ReportMetric(float64(ms.HeapSys)/mib, "heap-sys-MiB")
	if hwm, ok := peakRSS(); ok {
		b.ReportMetric(float64(hwm)/mib, "peak-rss-MiB")
	}
	b.ReportMetric(float64(busy.Load())/float64(b.N), "busy/burst")
}

// resetPeakRSS resets the kernel's record of this process's peak resident
// size (VmHWM), so that what the benchmark reports is its own.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset peak RSS (%v); it includes what ran before", err)
	}
}

// peakRSS returns VmHWM from /proc/self/status, in bytes.
func peakRSS() (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
