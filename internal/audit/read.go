package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Position names one line of an audit file.
type Position struct {
	File string
	Line int // from 1
}

func (p Position) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// scanLines calls fn for each line of the file at path, without its
// newline. torn is true for a last line that has no newline. line is only
// valid during the call.
func scanLines(path string, fn func(n int, line []byte, torn bool) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, 256<<10)
	var long []byte
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		switch {
		case err == nil:
			if ferr := fn(n, line[:len(line)-1], false); ferr != nil {
				return ferr
			}
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return fn(n, line, true)
			}
			return nil
		default:
			return fmt.Errorf("audit: %s: %w", path, err)
		}
	}
}

// ReadFunc is called by Read for each record; raw is the line as written
// (without its newline), valid only during the call.
type ReadFunc func(pos Position, raw []byte, r *Record) error

// Read decodes every record of files, in the order given, and calls fn for
// each. A last line without its newline (the writer is writing it, or was
// killed) is skipped; a line that is not a record is an error naming it.
func Read(files []string, fn ReadFunc) error {
	for _, file := range files {
		err := scanLines(file, func(n int, line []byte, torn bool) error {
			if torn {
				return nil
			}
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("%s:%d: not an audit record: %w", file, n, err)
			}
			return fn(Position{file, n}, line, &r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// LoadGraph adds the records of files to g, to start a live graph from the
// trail already on disk.
func LoadGraph(g *Graph, files []string) error {
	return Read(files, func(_ Position, _ []byte, r *Record) error {
		g.Add(r)
		return nil
	})
}
