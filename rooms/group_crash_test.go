package rooms_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// crashChildEnv carries the child process's instructions: the database URL,
// then the referral ids, then the user ids, each list comma-separated.
const crashChildEnv = "PATIENTPASS_TEST_GROUP_CRASH_CHILD"

// TestGroupCommitCrashAcknowledgesOnlyWhatCommitted posts messages from
// many writers in a child process, whose commands commit in groups, and
// kills it (SIGKILL) while groups are in flight. Every command the child
// acknowledged (printed, after its call returned) is in the store at the
// seq it was answered with; the rooms are gapless and the audit trail
// verifies. What the child never acknowledged may or may not have
// committed: that is the client's to retry under the same ref.
func TestGroupCommitCrashAcknowledgesOnlyWhatCommitted(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("the child half of TestGroupCommitCrashAcknowledgesOnlyWhatCommitted runs on its own")
	}
	url := pgtest.URL(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := newWorld(t, store)
	var ids []string
	for i := range 8 {
		ids = append(ids, w.create(t, fmt.Sprint("r", i), rooms.PriorityEmergency).ID)
	}
	users := []string{w.referrer.User.ID, w.specialist.User.ID, w.coord.User.ID}

	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupCommitCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+url+" "+strings.Join(ids, ",")+" "+strings.Join(users, ","))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	type ack struct {
		user, ref, referral string
		seq                 int64
	}
	var (
		acks    []ack
		grouped bool
		killed  bool
	)
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 5 && f[0] == "ack":
			var seq int64
			fmt.Sscan(f[4], &seq)
			acks = append(acks, ack{user: f[1], ref: f[2], referral: f[3], seq: seq})
		case len(f) == 3 && f[0] == "groups":
			var groups, members int64
			fmt.Sscan(f[1], &groups)
			fmt.Sscan(f[2], &members)
			// Kill it once groups are really shared, mid-stream.
			grouped = grouped || (groups > 0 && members >= 2*groups)
		}
		if !killed && grouped && len(acks) >= 400 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended before it was killed (%d acknowledged, grouped %v)", len(acks), grouped)
	}

	stored := 0
	for _, id := range ids {
		es := w.events(t, id)
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Fatalf("referral %s: event %d has seq %d; want gapless 1..n", id, i+1, e.Seq)
			}
			if e.Kind == rooms.EventMessage {
				stored++
			}
		}
	}
	for _, a := range acks {
		e, err := store.Event(ctx, a.referral, a.seq)
		var body rooms.MessageBody
		if err == nil {
			err = json.Unmarshal(e.Body, &body)
		}
		if err != nil || body.Body != a.ref {
			t.Errorf("acknowledged %s as seq %d of %s, but the store has %q (%v)", a.ref, a.seq, a.referral, body.Body, err)
		}
		if _, err := store.Command(ctx, a.user, a.ref); err != nil {
			t.Errorf("acknowledged %s, but its command record: %v", a.ref, err)
		}
	}
	if stored < len(acks) {
		t.Errorf("%d messages stored for %d acknowledged", stored, len(acks))
	}
	if _, broken, err := rooms.VerifyAudit(ctx, store); err != nil || broken != nil {
		t.Fatalf("audit verify after the crash: %v %v", broken, err)
	}
	t.Logf("%d acknowledged before the kill, %d stored (the rest committed unanswered)", len(acks), stored)
}

// TestGroupCommitCrashChild is the child process of the test above: it
// posts until it is killed, printing each acknowledgement and the group
// counts.
func TestGroupCommitCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("runs only as the child of TestGroupCommitCrashAcknowledgesOnlyWhatCommitted")
	}
	parts := strings.Fields(spec)
	ctx := context.Background()
	store, err := postgres.Open(ctx, parts[0])
	if err != nil {
		t.Fatal(err)
	}
	ids, userIDs := strings.Split(parts[1], ","), strings.Split(parts[2], ",")
	var callers []rooms.Caller
	for _, id := range userIDs {
		u, err := store.User(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		callers = append(callers, rooms.Caller{User: u, ClientAddr: "127.0.0.1"})
	}
	svc := rooms.NewService(rooms.Config{Store: store, Node: "crash-child"})
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format, args...)
	}
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; ; i++ {
				c := callers[rng.IntN(len(callers))]
				ref := fmt.Sprintf("w%d-%d", g, i)
				e, err := svc.PostMessage(ctx, c, rooms.PostMessage{Ref: ref, ReferralID: ids[rng.IntN(len(ids))], Body: ref})
				if err != nil {
					say("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
					continue
				}
				say("ack %s %s %s %d\n", c.User.ID, ref, e.ReferralID, e.Seq)
				if i%20 == 0 {
					st := svc.GroupStats()
					say("groups %d %d\n", st.Groups, st.Members)
				}
			}
		})
	}
	wg.Wait()
}
