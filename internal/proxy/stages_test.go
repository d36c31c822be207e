package proxy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/svidgate/svidgate/internal/config"
)

// The stage lists in docs/ARCHITECTURE.md are the ones the code runs.
func TestArchitectureStages(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- stages: checked by internal/proxy TestArchitectureStages -->\n```\n")
	if !ok {
		t.Fatal("docs/ARCHITECTURE.md: the stages block (marked by its comment) is missing")
	}
	block, _, _ = strings.Cut(block, "```")
	documented := map[config.Mode][]string{}
	for line := range strings.Lines(block) {
		mode, list, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for s := range strings.SplitSeq(list, "→") {
			documented[config.Mode(mode)] = append(documented[config.Mode(mode)], strings.TrimSpace(s))
		}
	}
	for mode := range pipelines {
		if got := Stages(mode); !slices.Equal(got, documented[mode]) {
			t.Errorf("%s: docs/ARCHITECTURE.md says %v, the code runs %v", mode, documented[mode], got)
		}
		delete(documented, mode)
	}
	for mode := range documented {
		t.Errorf("docs/ARCHITECTURE.md lists stages for mode %q, which has no pipeline", mode)
	}
}

// Every mode has a pipeline, each stage lives in the file of its name, and
// forward comes last (nothing may run after the upstream answered).
func TestPipelines(t *testing.T) {
	for _, mode := range []config.Mode{config.Inbound, config.Outbound, config.Edge} {
		names := Stages(mode)
		if len(names) == 0 || names[len(names)-1] != "forward" {
			t.Errorf("%s: stages %v: want a list ending with forward", mode, names)
		}
		for _, name := range names {
			if _, err := os.Stat(name + ".go"); err != nil {
				t.Errorf("%s: stage %q has no file %s.go", mode, name, name)
			}
		}
	}
	if slices.Contains(Stages(config.Outbound), "authenticate") {
		t.Error("outbound: the local app is not authenticated by svidgate; its upstream authenticates us")
	}
}

// docs/HARDENING.md names every header sanitize removes.
func TestHardeningNamesSpoofable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/HARDENING.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "<!-- spoofable: checked by internal/proxy TestHardeningNamesSpoofable -->")
	if !ok {
		t.Fatal("docs/HARDENING.md: the table of spoofable headers (marked by its comment) is missing")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	for _, h := range Spoofable {
		if !strings.Contains(strings.ToLower(table), "`"+strings.ToLower(h)+"`") {
			t.Errorf("docs/HARDENING.md does not name %s, which sanitize removes", h)
		}
	}
}
