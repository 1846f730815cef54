package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Server CPU per post, for the nodes loadtest started itself: the CPU time
// the nodes, their Redis and Postgres spent over the posting window,
// divided by the posts acknowledged — the figure the side-by-side bench
// compares with a peer's (SPEC §7). Read from /proc, so Linux only; it is
// left out elsewhere and against -url.

// clockTicks is the unit of /proc/<pid>/stat's utime and stime: USER_HZ,
// 100 on every Linux the project runs on.
const clockTicks = 100

// cpuFigures is server CPU per acknowledged post, in milliseconds.
type cpuFigures struct {
	Node     float64 `json:"node"`
	Redis    float64 `json:"redis"`
	Postgres float64 `json:"postgres"`
	Total    float64 `json:"total"`
}

// cpuSample is the CPU ticks the parts have used so far.
type cpuSample struct{ node, redis, postgres int64 }

// processTicks reads utime + stime of a process.
func processTicks(pid int) (int64, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start after its closing parenthesis.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, err1 == nil && err2 == nil
}

// postgresTicks adds up the ticks of every postgres process on the
// machine: the server the nodes use, with its background workers.
func postgresTicks() int64 {
	var total int64
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		if t, ok := processTicks(pid); ok {
			total += t
		}
	}
	return total
}

// cpuSample reads the ticks of the cluster's nodes, its Redis (when
// loadtest started it) and Postgres.
func (c *cluster) cpuSample() (cpuSample, bool) {
	var s cpuSample
	for _, n := range c.nodes {
		if n.cmd == nil || n.cmd.Process == nil {
			return s, false
		}
		t, ok := processTicks(n.cmd.Process.Pid)
		if !ok {
			return s, false
		}
		s.node += t
	}
	if c.redis != nil && c.redis.Process != nil {
		s.redis, _ = processTicks(c.redis.Process.Pid)
	}
	s.postgres = postgresTicks()
	return s, true
}

// perPost turns the ticks used between two samples into milliseconds per
// post.
func perPost(from, to cpuSample, posts int64) *cpuFigures {
	if posts <= 0 {
		return nil
	}
	msPer := func(ticks int64) float64 { return round2(float64(ticks) * 1000 / clockTicks / float64(posts)) }
	f := &cpuFigures{Node: msPer(to.node - from.node), Redis: msPer(to.redis - from.redis), Postgres: msPer(to.postgres - from.postgres)}
	f.Total = round2(f.Node + f.Redis + f.Postgres)
	return f
}
