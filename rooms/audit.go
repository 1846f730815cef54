package rooms

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"
)

// AuditAction is the kind of interaction an audit entry records.
type AuditAction string

// Audit actions (create/read/update/delete/execute).
const (
	ActionCreate  AuditAction = "create"
	ActionRead    AuditAction = "read"
	ActionUpdate  AuditAction = "update"
	ActionDelete  AuditAction = "delete"
	ActionExecute AuditAction = "execute"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"
	OutcomeInvalid = "invalid"
	OutcomeFailed  = "failed"
)

// AuditChains is the number of independent hash chains the audit log is kept
// in. One chain would serialise every commit in the system behind one lock;
// entries are spread over chains by referral (or by actor when there is no
// referral), so one referral's entries stay in one chain and in order.
const AuditChains = 16

// AuditEntry is one interaction in the append-only, hash-chained audit log.
// Hash covers PrevHash and every other field, so changing or removing an
// entry breaks its chain.
type AuditEntry struct {
	// ID is the store's global number for the entry, for people to quote.
	ID    int64 `json:"id"`
	Chain int   `json:"chain"`
	// Seq numbers the entries of one chain 1, 2, 3 … with no gaps.
	Seq               int64       `json:"seq"`
	At                time.Time   `json:"at"`
	ActorID           string      `json:"actor_id"`
	ActorRegistration string      `json:"actor_registration"`
	ActorRole         Role        `json:"actor_role"`
	Action            AuditAction `json:"action"`
	// Event names the interaction, such as "referral.view" or "login.failed".
	Event      string `json:"event"`
	ReferralID string `json:"referral_id,omitempty"`
	// PatientNHSNumber identifies the patient the interaction concerned.
	PatientNHSNumber string `json:"patient_nhs_number,omitempty"`
	Outcome          string `json:"outcome"`
	// Detail is a short machine-readable note (error code, target status);
	// never message bodies or plan text.
	Detail     string `json:"detail,omitempty"`
	Node       string `json:"node,omitempty"`
	ClientAddr string `json:"client_addr,omitempty"`
	PrevHash   string `json:"prev_hash"`
	Hash       string `json:"hash"`
}

// AuditHead is the last entry of one chain; Seq 0 and an empty Hash for an
// empty chain.
type AuditHead struct {
	Chain int
	Seq   int64
	Hash  string
}

// AuditFilter selects audit entries for reading, newest first.
type AuditFilter struct {
	ReferralID string
	ActorID    string
	Event      string
	Outcome    string
	Action     AuditAction
	// Organisation, when set, keeps the entries of its people and
	// displays (by actor) and of the referrals it receives or refers.
	Organisation string
	// From and To, when set, keep entries at or after From and before To.
	From, To time.Time
	// ID, when set, keeps the entry of that number only.
	ID int64
	// Before, when set, keeps entries with an ID below it: the cursor of
	// the next page, newest first.
	Before int64
	Limit  int
}

// AuditChainFor returns the chain an entry about key (a referral id, or the
// actor id when there is no referral) is kept in.
func AuditChainFor(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % AuditChains)
}

// ComputeHash returns the hex SHA-256 of the entry's previous hash and its
// contents. Times are hashed at microsecond precision in UTC, the precision
// every store keeps.
func (e AuditEntry) ComputeHash() string {
	c := e
	c.ID = 0
	c.Hash = ""
	c.At = c.At.UTC().Truncate(time.Microsecond)
	b, err := json.Marshal(c)
	if err != nil {
		panic("marshal audit entry: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Link sets e's position after head and its hash: Chain, Seq, PrevHash,
// Hash, and At at the precision stores keep. A store appending e does this
// with the head it holds.
func (e *AuditEntry) Link(head AuditHead) {
	e.Chain = head.Chain
	e.Seq = head.Seq + 1
	e.PrevHash = head.Hash
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.Hash = e.ComputeHash()
}

// HashTemplate returns what ComputeHash hashes for e around the two values
// only the chain's head decides: the bytes hashed for e at position seq
// after the entry whose hash is prev are
//
//	before + decimal(seq) + middle + prev + after
//
// so a store can link e, and hash it, in the same statement that reads and
// moves the head. e.Chain must be set.
func (e AuditEntry) HashTemplate() (before, middle, after []byte) {
	c := e
	c.ID, c.Seq, c.PrevHash, c.Hash = 0, 0, "", ""
	c.At = c.At.UTC().Truncate(time.Microsecond)
	b, err := json.Marshal(c)
	if err != nil {
		panic("marshal audit entry: " + err.Error())
	}
	// ID, Chain and Seq are the first fields, PrevHash and Hash the last,
	// and none of them is a string that could hold their names.
	head := fmt.Appendf(nil, `{"id":0,"chain":%d,"seq":`, c.Chain)
	const zeroSeq, tail = `0,`, `","hash":""}`
	const prevField = `,"prev_hash":"`
	rest, ok := bytes.CutPrefix(b, head)
	if ok {
		rest, ok = bytes.CutPrefix(rest, []byte(zeroSeq))
	}
	if ok {
		rest, ok = bytes.CutSuffix(rest, []byte(prevField+tail))
	}
	if !ok {
		panic("audit entry encodes in an unexpected shape: " + string(b))
	}
	middle = append([]byte(","), rest...)
	middle = append(middle, prevField...)
	return head, middle, []byte(tail)
}

// AuditBreak describes the first broken link found by VerifyAudit.
type AuditBreak struct {
	Chain   int
	Seq     int64
	EntryID int64
	Reason  string
}

func (b AuditBreak) Error() string {
	if b.EntryID != 0 {
		return fmt.Sprintf("audit entry %d (chain %d, position %d): %s", b.EntryID, b.Chain, b.Seq, b.Reason)
	}
	return fmt.Sprintf("audit chain %d at position %d: %s", b.Chain, b.Seq, b.Reason)
}

// AuditReader is what VerifyAudit needs from a store.
type AuditReader interface {
	AuditHeads(ctx context.Context) ([]AuditHead, error)
	AuditEntries(ctx context.Context, chain int, afterSeq int64, limit int) ([]AuditEntry, error)
}

// VerifyAudit walks every chain and returns the number of entries checked and
// the first broken link, if any: an entry whose contents no longer match its
// hash, whose previous hash does not match its predecessor, a missing
// position, or a chain that ends before its recorded head.
func VerifyAudit(ctx context.Context, r AuditReader) (int64, *AuditBreak, error) {
	heads, err := r.AuditHeads(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("read audit chain heads: %w", err)
	}
	var checked int64
	for _, head := range heads {
		prev := AuditHead{Chain: head.Chain}
		// Entries past the head read at the start were appended while
		// verifying; they are left for the next run.
		for prev.Seq < head.Seq {
			page, err := r.AuditEntries(ctx, head.Chain, prev.Seq, int(min(1000, head.Seq-prev.Seq)))
			if err != nil {
				return checked, nil, fmt.Errorf("read audit chain %d: %w", head.Chain, err)
			}
			for _, e := range page {
				checked++
				switch {
				case e.Seq != prev.Seq+1:
					return checked, &AuditBreak{Chain: e.Chain, Seq: prev.Seq + 1, Reason: fmt.Sprintf("entry missing (next present is position %d)", e.Seq)}, nil
				case e.PrevHash != prev.Hash:
					return checked, &AuditBreak{Chain: e.Chain, Seq: e.Seq, EntryID: e.ID, Reason: "previous-hash link broken (an earlier entry was altered or removed)"}, nil
				case e.ComputeHash() != e.Hash:
					return checked, &AuditBreak{Chain: e.Chain, Seq: e.Seq, EntryID: e.ID, Reason: "contents altered (hash does not match)"}, nil
				}
				prev = AuditHead{Chain: e.Chain, Seq: e.Seq, Hash: e.Hash}
			}
			if len(page) == 0 {
				break
			}
		}
		if prev.Seq != head.Seq || prev.Hash != head.Hash {
			return checked, &AuditBreak{Chain: head.Chain, Seq: prev.Seq + 1, Reason: fmt.Sprintf("chain ends at position %d but its head records position %d (entries removed)", prev.Seq, head.Seq)}, nil
		}
	}
	return checked, nil, nil
}
