package audit

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Kinds of VerifyError.
const (
	Changed   = "changed"   // the line's bytes are not those its chain was computed over
	Removed   = "removed"   // records are missing before this line
	Reordered = "reordered" // the line holds a record that belongs elsewhere
	Malformed = "malformed" // the line is not a chained audit record
)

// VerifyError names the first line at which a trail does not verify.
type VerifyError struct {
	Position
	Kind   string // Changed, Removed, Reordered or Malformed
	Detail string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Position, e.Kind, e.Detail)
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Partial accepts a trail whose first record is not seq 1 (older
	// files were deleted by retention): its first record is taken as the
	// anchor and the chain is verified from there on.
	Partial bool
}

// VerifyResult describes a trail that verified.
type VerifyResult struct {
	Records int
	Files   []string // in the order of the trail
	First   Link     // the first record verified
	Last    Link     // the last record: compare its chain with a copy kept elsewhere to detect a cut-off end
	// Incomplete names a last line without its newline that was not
	// counted: the writer is writing it, or was killed while writing it.
	Incomplete string
}

// Verify checks the hash chain of a trail split over files. The files may
// be given in any order: they are put in the order of the seq of their
// first records. It returns a *VerifyError for the first line that was
// changed, removed, reordered or is not a record.
func Verify(files []string, opts VerifyOptions) (VerifyResult, error) {
	type fileStart struct {
		name  string
		first uint64
		empty bool
	}
	starts := make([]fileStart, 0, len(files))
	for _, f := range files {
		fs := fileStart{name: f, empty: true}
		errStop := errors.New("stop")
		err := scanLines(f, func(_ int, line []byte, torn bool) error {
			if l, err := linkOf(line); err == nil && !torn {
				fs.first, fs.empty = l.Seq, false
			}
			return errStop
		})
		if err != nil && err != errStop {
			return VerifyResult{}, err
		}
		starts = append(starts, fs)
	}
	slices.SortStableFunc(starts, func(a, b fileStart) int {
		if a.empty != b.empty {
			if a.empty {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.first, b.first)
	})
	var res VerifyResult
	for _, s := range starts {
		res.Files = append(res.Files, s.name)
	}

	var prev string
	var expect uint64 = 1
	for fi, file := range res.Files {
		err := scanLines(file, func(n int, line []byte, torn bool) error {
			pos := Position{file, n}
			bad := func(kind, format string, args ...any) error {
				return &VerifyError{Position: pos, Kind: kind, Detail: fmt.Sprintf(format, args...)}
			}
			if torn {
				if fi == len(res.Files)-1 {
					res.Incomplete = pos.String()
					return nil
				}
				return bad(Malformed, "incomplete line (no newline) before the end of the trail")
			}
			canonical, chain, err := SplitChain(line)
			if err != nil {
				var v struct {
					Schema int `json:"schema"`
				}
				if json.Unmarshal(line, &v) == nil && v.Schema == 1 {
					return bad(Malformed, "a schema 1 record carries no chain and cannot be verified")
				}
				return bad(Malformed, "not a chained audit record: the line must end with ,\"chain\":\"<64 hex digits>\"}")
			}
			var head struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(canonical, &head); err != nil || head.Seq == 0 {
				return bad(Malformed, "not an audit record with a seq: %v", err)
			}
			seq := head.Seq
			if res.Records == 0 && seq != 1 {
				if !opts.Partial {
					return bad(Removed, "the trail starts at seq %d: records 1–%d are missing (were older files deleted by retention? pass -partial to verify from this record on)", seq, seq-1)
				}
				prev, expect = chain, seq+1
				res.First, res.Last = Link{seq, chain}, Link{seq, chain}
				res.Records++
				return nil
			}
			if seq != expect {
				if at, found := findSeq(res.Files, expect, fi, n); found {
					return bad(Reordered, "the line holds record seq %d, where seq %d was expected; seq %d is at %s", seq, expect, expect, at)
				}
				if seq > expect {
					if seq == expect+1 {
						return bad(Removed, "record seq %d, which came before this line, is missing", expect)
					}
					return bad(Removed, "records seq %d–%d, which came before this line, are missing", expect, seq-1)
				}
				return bad(Reordered, "the line holds record seq %d, where seq %d was expected (a duplicate, or moved)", seq, expect)
			}
			if got := NextChain(prev, canonical); got != chain {
				return bad(Changed, "the record's bytes are not those its chain was computed over (seq %d)", seq)
			}
			if res.Records == 0 {
				res.First = Link{seq, chain}
			}
			prev, expect = chain, seq+1
			res.Last = Link{seq, chain}
			res.Records++
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// findSeq looks for a record with seq after line n of files[fi].
func findSeq(files []string, seq uint64, fi, n int) (Position, bool) {
	var at Position
	found := errors.New("found")
	for i := fi; i < len(files); i++ {
		err := scanLines(files[i], func(m int, line []byte, torn bool) error {
			if i == fi && m <= n || torn {
				return nil
			}
			if l, err := linkOf(line); err == nil && l.Seq == seq {
				at = Position{files[i], m}
				return found
			}
			return nil
		})
		if err == found {
			return at, true
		}
	}
	return at, false
}
