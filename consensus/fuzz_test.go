package consensus

import (
	"testing"
)

// FuzzStep feeds arbitrary messages, as a malicious or broken peer could
// send them, into a leader and a follower: nothing may panic, and the
// core's invariants must hold afterwards.
func FuzzStep(f *testing.F) {
	f.Add([]byte{3, 1, 0, 5, 1, 9, 0, 0, 2})
	f.Add([]byte{4, 2, 1, 200, 0, 0, 1, 3, 0, 11, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{9, 0, 0, 0, 0, 40, 0, 0, 0, 12, 1, 2, 7, 7, 0, 0, 0, 1})
	f.Fuzz(fuzzStep)
}

func fuzzStep(t *testing.T, data []byte) {
	nw := newTestNet(t, 3, withCheckQuorum, withPreVote)
	nw.campaign("n1")
	_ = nw.propose("n1", "a")
	from := []string{"n1", "n2", "n3", "stranger"}
	for len(data) >= 9 {
		b := data[:9]
		data = data[9:]
		term := uint64(b[2] % 4)
		if term > 0 {
			term += 1 // around the current term (2)
		}
		m := Message{
			Type:       MessageType(b[0] % uint8(msgTypeCount+1)),
			From:       from[b[1]%4],
			Term:       term,
			Index:      uint64(b[3] % 16),
			LogTerm:    uint64(b[4] % 4),
			Commit:     uint64(b[5] % 16),
			Reject:     b[6]&1 == 1,
			RejectHint: uint64(b[7] % 16),
		}
		for i := range int(b[8] % 4) {
			m.Entries = append(m.Entries, Entry{Index: m.Index + 1 + uint64(i), Term: max(m.LogTerm, m.Term), Type: EntryType(b[8] >> 7), Data: []byte{b[8]}})
		}
		if m.Type == MsgSnap && b[6]&2 == 2 {
			m.Snapshot = &SnapshotMeta{Index: m.Index, Term: m.LogTerm, Conf: ConfState{Members: members("n1", "n2", "n3")}}
		}
		if m.Type == MsgHeartbeat || m.Type == MsgHeartbeatResp {
			m.Context = []byte{0, 0, 0, 0, 0, 0, 0, b[7]}
		}
		for _, id := range []string{"n1", "n2"} {
			n := nw.node(id)
			m.To = id
			if m.From == id {
				continue
			}
			_ = n.rn.Step(m)
			nw.process(n)
			l := n.rn.r.log
			if !(l.applied <= l.applying && l.applying <= l.committed && l.committed <= l.lastIndex()) {
				t.Fatalf("%s: applied %d applying %d committed %d last %d", id, l.applied, l.applying, l.committed, l.lastIndex())
			}
		}
	}
}
