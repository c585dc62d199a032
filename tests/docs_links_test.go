package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsLinks: every relative link in README.md and docs/*.md names a file that exists, so
// the guides the README points to (quickstart, operations, configuration, migration, the
// dashboard and Grafana files) cannot go missing unnoticed.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md", "../examples/README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := filepath.Join(filepath.Dir(f), target)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
	for _, want := range []string{"docs/quickstart.md", "docs/operations.md", "docs/configuration.md", "docs/migration-from-nss.md"} {
		b, _ := os.ReadFile("../README.md")
		if !strings.Contains(string(b), want) {
			t.Errorf("README does not link %s", want)
		}
	}
}
