package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Conf-change errors (added to the agreed API).
var (
	// ErrBadConfChange: the bytes of an EntryConfChange do not decode.
	ErrBadConfChange = errors.New("consensus: malformed configuration change")
	// ErrInvalidConfChange: the change cannot be applied to the current
	// configuration (unknown member, last voter, empty ID...).
	ErrInvalidConfChange = errors.New("consensus: invalid configuration change")
)

const (
	confChangeVersion = 1
	maxConfIDLen      = 256
	maxConfAddrLen    = 1024
)

// EncodeConfChange encodes cc compactly: a version byte, the type byte,
// then ID and Addr each as a uvarint length and the bytes.
func EncodeConfChange(cc ConfChange) []byte {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen64+len(cc.ID)+len(cc.Addr))
	b = append(b, confChangeVersion, byte(cc.Type))
	b = binary.AppendUvarint(b, uint64(len(cc.ID)))
	b = append(b, cc.ID...)
	b = binary.AppendUvarint(b, uint64(len(cc.Addr)))
	b = append(b, cc.Addr...)
	return b
}

// DecodeConfChange decodes what EncodeConfChange produced. Any other input
// returns an error wrapping ErrBadConfChange.
func DecodeConfChange(b []byte) (ConfChange, error) {
	var cc ConfChange
	if len(b) < 2 {
		return cc, fmt.Errorf("%w: %d bytes", ErrBadConfChange, len(b))
	}
	if b[0] != confChangeVersion {
		return cc, fmt.Errorf("%w: unknown version %d", ErrBadConfChange, b[0])
	}
	cc.Type = ConfChangeType(b[1])
	if cc.Type > ConfRemove {
		return ConfChange{}, fmt.Errorf("%w: unknown type %d", ErrBadConfChange, b[1])
	}
	rest := b[2:]
	id, rest, err := readString(rest, maxConfIDLen)
	if err != nil {
		return ConfChange{}, fmt.Errorf("%w: id: %v", ErrBadConfChange, err)
	}
	addr, rest, err := readString(rest, maxConfAddrLen)
	if err != nil {
		return ConfChange{}, fmt.Errorf("%w: addr: %v", ErrBadConfChange, err)
	}
	if len(rest) != 0 {
		return ConfChange{}, fmt.Errorf("%w: %d trailing bytes", ErrBadConfChange, len(rest))
	}
	if id == "" {
		return ConfChange{}, fmt.Errorf("%w: empty id", ErrBadConfChange)
	}
	cc.ID, cc.Addr = id, addr
	return cc, nil
}

func readString(b []byte, maxLen uint64) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return "", nil, errors.New("bad length")
	}
	b = b[k:]
	if n > maxLen {
		return "", nil, fmt.Errorf("length %d over limit %d", n, maxLen)
	}
	if n > uint64(len(b)) {
		return "", nil, fmt.Errorf("length %d past end (%d bytes left)", n, len(b))
	}
	return string(b[:n]), b[n:], nil
}

func (cs ConfState) clone() ConfState {
	return ConfState{Members: slices.Clone(cs.Members)}
}

func (cs ConfState) find(id string) (Member, bool) {
	for _, m := range cs.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

func (cs ConfState) isVoter(id string) bool {
	m, ok := cs.find(id)
	return ok && m.Voter
}

func (cs ConfState) voters() []string {
	var out []string
	for _, m := range cs.Members {
		if m.Voter {
			out = append(out, m.ID)
		}
	}
	return out
}

// String prints the configuration, voters then learners.
func (cs ConfState) String() string {
	var sb strings.Builder
	sb.WriteString("{")
	for i, m := range cs.Members {
		if i > 0 {
			sb.WriteString(" ")
		}
		sb.WriteString(m.ID)
		if !m.Voter {
			sb.WriteString("(learner)")
		}
	}
	sb.WriteString("}")
	return sb.String()
}

// applyConfChange returns the configuration cs with cc applied; cs is not
// modified. Members are kept sorted by ID so every node derives the same
// ConfState.
func applyConfChange(cs ConfState, cc ConfChange) (ConfState, error) {
	if cc.ID == "" {
		return cs, fmt.Errorf("%w: empty id", ErrInvalidConfChange)
	}
	out := cs.clone()
	i := slices.IndexFunc(out.Members, func(m Member) bool { return m.ID == cc.ID })
	switch cc.Type {
	case ConfAddLearner:
		if i >= 0 {
			if out.Members[i].Voter {
				return cs, fmt.Errorf("%w: %s is a voter (cannot demote)", ErrInvalidConfChange, cc.ID)
			}
			if cc.Addr != "" {
				out.Members[i].Addr = cc.Addr
			}
			return out, nil
		}
		out.Members = append(out.Members, Member{ID: cc.ID, Addr: cc.Addr})
	case ConfAddVoter:
		if i >= 0 {
			out.Members[i].Voter = true
			if cc.Addr != "" {
				out.Members[i].Addr = cc.Addr
			}
			return out, nil
		}
		out.Members = append(out.Members, Member{ID: cc.ID, Addr: cc.Addr, Voter: true})
	case ConfRemove:
		if i < 0 {
			return cs, fmt.Errorf("%w: %s is not a member", ErrInvalidConfChange, cc.ID)
		}
		if out.Members[i].Voter && len(out.voters()) == 1 {
			return cs, fmt.Errorf("%w: cannot remove the last voter %s", ErrInvalidConfChange, cc.ID)
		}
		out.Members = slices.Delete(out.Members, i, i+1)
	default:
		return cs, fmt.Errorf("%w: unknown type %d", ErrInvalidConfChange, cc.Type)
	}
	slices.SortFunc(out.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// applyConfEntries applies every EntryConfChange among ents to cs. A
// change that does not apply is skipped (every node skips it alike); an
// entry that does not decode is an error.
func applyConfEntries(cs ConfState, ents []Entry) (ConfState, error) {
	for _, e := range ents {
		if e.Type != EntryConfChange {
			continue
		}
		cc, err := DecodeConfChange(e.Data)
		if err != nil {
			return cs, fmt.Errorf("entry %d: %w", e.Index, err)
		}
		if next, err := applyConfChange(cs, cc); err == nil {
			cs = next
		}
	}
	return cs, nil
}
