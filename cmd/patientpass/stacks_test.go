package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWithSmallStacksKeepsTheOperatorsChoice(t *testing.T) {
	for _, c := range []struct {
		in, want string
		added    bool
	}{
		{"", "adaptivestackstart=0", true},
		{"  ", "adaptivestackstart=0", true},
		{"gctrace=1", "gctrace=1,adaptivestackstart=0", true},
		{"adaptivestackstart=1", "adaptivestackstart=1", false},
		{"gctrace=1, adaptivestackstart=0", "gctrace=1, adaptivestackstart=0", false},
	} {
		got, added := withSmallStacks(c.in)
		if got != c.want || added != c.added {
			t.Errorf("withSmallStacks(%q) = %q, %v; want %q, %v", c.in, got, added, c.want, c.added)
		}
	}
}

// TestServeRestartsWithSmallStacks runs the built binary: serve replaces
// itself with the same process under GODEBUG=adaptivestackstart=0, keeping
// whatever else GODEBUG held, and a node given its own setting keeps it.
func TestServeRestartsWithSmallStacks(t *testing.T) {
	bin := buildNode(t)
	for godebug, want := range map[string]string{
		"madvdontneed=1":       "madvdontneed=1,adaptivestackstart=0",
		"adaptivestackstart=1": "adaptivestackstart=1",
	} {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "GODEBUG="+godebug, "PATIENTPASS_ADDR=127.0.0.1:0", "DATABASE_URL=", "REDIS_URL=",
			"LOG_FORMAT=json", "PATIENTPASS_DATA_DIR="+t.TempDir())
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
		var serving struct {
			GODEBUG string `json:"godebug"`
		}
		found := false
		for sc := bufio.NewScanner(out); sc.Scan(); {
			if line := sc.Text(); strings.Contains(line, `"message":"serving"`) {
				if err := json.Unmarshal([]byte(line), &serving); err != nil {
					t.Fatalf("serving line %q: %v", line, err)
				}
				found = true
				break
			}
		}
		timer.Stop()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if !found {
			t.Fatalf("GODEBUG=%s: the node never logged that it was serving", godebug)
		}
		if serving.GODEBUG != want {
			t.Errorf("GODEBUG=%s: the node serves with GODEBUG=%q; want %q", godebug, serving.GODEBUG, want)
		}
	}
}

// buildNode builds the patientpass binary into the test's temporary
// directory, for tests that run nodes as processes of their own.
func buildNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "patientpass")
	if out, err := exec.Command("go", "build", "-o", bin, "patientpass/cmd/patientpass").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
