package rooms

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"
)

// A store hashes an entry from HashTemplate's parts, the position and the
// previous hash; that must be exactly what ComputeHash hashes.
func TestHashTemplateHashesAsComputeHash(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 30, 0, 123456789, time.FixedZone("BST", 3600))
	full := AuditEntry{ID: 42, Chain: 11, At: at, ActorID: `u-"1"`, ActorRegistration: "1234567",
		ActorRole: RoleSpecialist, Action: ActionCreate, Event: "referral.message", ReferralID: "r-<1>&",
		PatientNHSNumber: "9434765919", Outcome: OutcomeSuccess, Detail: "seq=3 len=12 \\ \u2028 naïve 🚑\n",
		Node: "node-1", ClientAddr: "[2001:db8::1]:443", PrevHash: "stale", Hash: "stale"}
	for _, c := range []struct {
		name string
		e    AuditEntry
		head AuditHead
	}{
		{"every_field", full, AuditHead{Chain: 11, Seq: 41, Hash: "ab12"}},
		{"first_of_its_chain", full, AuditHead{Chain: 11}},
		{"only_required_fields", AuditEntry{Chain: 0, At: at, Action: ActionRead, Event: "login", Outcome: OutcomeDenied}, AuditHead{Chain: 0, Seq: 9999999999, Hash: "ff"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.e
			want.Link(c.head)
			before, middle, after := c.e.HashTemplate()
			input := string(before) + strconv.FormatInt(c.head.Seq+1, 10) + string(middle) + c.head.Hash + string(after)
			sum := sha256.Sum256([]byte(input))
			if got := hex.EncodeToString(sum[:]); got != want.Hash {
				t.Errorf("hash from the template %s, ComputeHash %s; template input:\n%s", got, want.Hash, input)
			}
		})
	}
}
