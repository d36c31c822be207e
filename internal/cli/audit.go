package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
)

const auditUsage = `usage:
  svidgate audit verify FILE... [-partial]
  svidgate audit query FILE... [-caller GLOB] [-rule ID] [-decision allow|deny|limited|error] [-since DURATION|TIME] [-json]
  svidgate audit graph FILE... [-format dot|mermaid|json|svg]
`

func auditCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return auditVerify(args[1:], stdout, stderr)
	case "query":
		return auditQuery(args[1:], time.Now(), stdout, stderr)
	case "graph":
		return auditGraph(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "svidgate audit: unknown command %q\n%s", args[0], auditUsage)
		return 2
	}
}

// parseFiles parses flags that may come before, between or after the
// FILE arguments, and returns the files; at least one is required.
func parseFiles(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, int, bool) {
	fs.SetOutput(stderr)
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "svidgate %s: name at least one audit FILE\n", fs.Name())
		fs.Usage()
		return nil, 2, false
	}
	return files, 0, true
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	partial := fs.Bool("partial", false, "accept a trail that does not start at seq 1 (older files deleted by retention)")
	files, code, ok := parseFiles(fs, args, stderr)
	if !ok {
		return code
	}
	res, err := audit.Verify(files, audit.VerifyOptions{Partial: *partial})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d records", res.Records)
	if res.Records > 0 {
		fmt.Fprintf(stdout, ", seq %d–%d, last chain %s", res.First.Seq, res.Last.Seq, res.Last.Chain)
	}
	fmt.Fprintln(stdout)
	if len(res.Files) > 1 {
		fmt.Fprintf(stdout, "files in trail order: %s\n", strings.Join(res.Files, " "))
	}
	if res.Incomplete != "" {
		fmt.Fprintf(stdout, "note: %s is an incomplete last line (being written, or the writer was killed); not counted\n", res.Incomplete)
	}
	return 0
}

func auditQuery(args []string, now time.Time, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit query", flag.ContinueOnError)
	var f audit.Filter
	fs.StringVar(&f.Caller, "caller", "", "caller SPIFFE ID `glob`: * within a segment, ** across segments")
	fs.StringVar(&f.Rule, "rule", "", "deciding rule `id`")
	fs.StringVar(&f.Decision, "decision", "", "allow, deny, limited or error")
	since := fs.String("since", "", "records of the last `DURATION` (e.g. 15m) or since an RFC 3339 time")
	asJSON := fs.Bool("json", false, "print matching records as JSON lines, exactly as written")
	files, code, ok := parseFiles(fs, args, stderr)
	if !ok {
		return code
	}
	if err := audit.CheckDecision(f.Decision); err != nil {
		fmt.Fprintln(stderr, "svidgate audit query: -"+err.Error())
		return 2
	}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			f.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			f.Since = t
		} else {
			fmt.Fprintf(stderr, "svidgate audit query: -since %q is neither a duration (15m, 24h) nor an RFC 3339 time\n", *since)
			return 2
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "TIME\tLISTENER\tCALLER\tMETHOD\tPATH\tDECISION\tRULE\tSTATUS")
	}
	matched := 0
	err := audit.Read(files, func(_ audit.Position, raw []byte, r *audit.Record) error {
		if !f.Match(r) {
			return nil
		}
		matched++
		if *asJSON {
			_, err := fmt.Fprintf(stdout, "%s\n", raw)
			return err
		}
		from, _ := audit.EdgeOf(r)
		path := r.Request.Path
		if r.TLS.Reason != "" {
			path = "(handshake: " + r.TLS.Reason + ")"
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			r.Listener, from, dash(r.Request.Method), dash(path), r.Decision.Result, dash(r.Decision.Rule), r.Status)
		return err
	})
	if !*asJSON {
		tw.Flush()
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !*asJSON {
		fmt.Fprintf(stderr, "%d records\n", matched)
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditGraph(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit graph", flag.ContinueOnError)
	format := fs.String("format", "dot", "dot, mermaid, json or svg")
	files, code, ok := parseFiles(fs, args, stderr)
	if !ok {
		return code
	}
	write, ok := map[string]func(io.Writer, []audit.Edge) error{
		"dot": audit.WriteDOT, "mermaid": audit.WriteMermaid, "json": audit.WriteJSON,
		"svg": func(w io.Writer, e []audit.Edge) error {
			return audit.WriteSVG(w, e, "svidgate service graph", time.Now())
		},
	}[*format]
	if !ok {
		fmt.Fprintf(stderr, "svidgate audit graph: -format %q is not valid; want dot, mermaid, json or svg\n", *format)
		return 2
	}
	g := audit.NewGraph(1 << 20)
	if err := audit.LoadGraph(g, files); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := write(stdout, g.Edges()); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
