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
	ordered, err := trailOrder(files)
	if err != nil {
		return VerifyResult{}, err
	}
	v := &chainVerifier{res: VerifyResult{Files: ordered}, partial: opts.Partial, expect: 1}
	for fi, file := range ordered {
		err := scanLines(file, func(n int, line []byte, torn bool) error {
			return v.line(fi, n, line, torn)
		})
		if err != nil {
			return v.res, err
		}
	}
	return v.res, nil
}

// trailOrder puts files in the order of the seq of their first records,
// files without a record last.
func trailOrder(files []string) ([]string, error) {
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
			return nil, err
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
	var ordered []string
	for _, s := range starts {
		ordered = append(ordered, s.name)
	}
	return ordered, nil
}

// chainVerifier follows the chain of a trail line by line.
type chainVerifier struct {
	res     VerifyResult
	partial bool
	prev    string // the chain of the last record verified
	expect  uint64 // the seq the next record must have
}

// line verifies line n of the trail's file fi.
func (v *chainVerifier) line(fi, n int, line []byte, torn bool) error {
	pos := Position{v.res.Files[fi], n}
	if torn {
		if fi == len(v.res.Files)-1 {
			v.res.Incomplete = pos.String()
			return nil
		}
		return badLine(pos, Malformed, "incomplete line (no newline) before the end of the trail")
	}
	canonical, chain, seq, err := chainedRecord(pos, line)
	if err != nil {
		return err
	}
	if v.res.Records == 0 && seq != 1 {
		if !v.partial {
			return badLine(pos, Removed, "the trail starts at seq %d: records 1–%d are missing (were older files deleted by retention? pass -partial to verify from this record on)", seq, seq-1)
		}
		v.accept(seq, chain)
		return nil
	}
	if seq != v.expect {
		return v.misplaced(pos, fi, seq)
	}
	if got := NextChain(v.prev, canonical); got != chain {
		return badLine(pos, Changed, "the record's bytes are not those its chain was computed over (seq %d)", seq)
	}
	v.accept(seq, chain)
	return nil
}

// accept takes the record seq with its chain as the trail's last.
func (v *chainVerifier) accept(seq uint64, chain string) {
	if v.res.Records == 0 {
		v.res.First = Link{seq, chain}
	}
	v.prev, v.expect = chain, seq+1
	v.res.Last = Link{seq, chain}
	v.res.Records++
}

// misplaced explains a record seq at pos where v.expect was due: the
// expected one is further on (reordered), missing (removed), or seq is a
// duplicate.
func (v *chainVerifier) misplaced(pos Position, fi int, seq uint64) error {
	expect := v.expect
	if at, found := findSeq(v.res.Files, expect, fi, pos.Line); found {
		return badLine(pos, Reordered, "the line holds record seq %d, where seq %d was expected; seq %d is at %s", seq, expect, expect, at)
	}
	if seq > expect {
		if seq == expect+1 {
			return badLine(pos, Removed, "record seq %d, which came before this line, is missing", expect)
		}
		return badLine(pos, Removed, "records seq %d–%d, which came before this line, are missing", expect, seq-1)
	}
	return badLine(pos, Reordered, "the line holds record seq %d, where seq %d was expected (a duplicate, or moved)", seq, expect)
}

// chainedRecord splits a line of the trail at pos into the record's
// canonical bytes, its chain and its seq.
func chainedRecord(pos Position, line []byte) (canonical []byte, chain string, seq uint64, err error) {
	canonical, chain, err = SplitChain(line)
	if err != nil {
		var v struct {
			Schema int `json:"schema"`
		}
		if json.Unmarshal(line, &v) == nil && v.Schema == 1 {
			return nil, "", 0, badLine(pos, Malformed, "a schema 1 record carries no chain and cannot be verified")
		}
		return nil, "", 0, badLine(pos, Malformed, "not a chained audit record: the line must end with ,\"chain\":\"<64 hex digits>\"}")
	}
	var head struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(canonical, &head); err != nil || head.Seq == 0 {
		return nil, "", 0, badLine(pos, Malformed, "not an audit record with a seq: %v", err)
	}
	return canonical, chain, head.Seq, nil
}

// badLine is the *VerifyError for the line at pos.
func badLine(pos Position, kind, format string, args ...any) error {
	return &VerifyError{Position: pos, Kind: kind, Detail: fmt.Sprintf(format, args...)}
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
