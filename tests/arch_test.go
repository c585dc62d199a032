package tests

import (
	"encoding/json"
	"io"
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/starling-io/starling"

// allowed maps each package (relative to the module) to the packages of ours it may import
// directly: the table of ../shared/ARCHITECTURE.md. "*" allows anything but *test helpers.
// A package missing from the table fails the test, so a new package needs a decision.
var allowed = map[string][]string{
	"core/wire":           {},
	"core/subject":        {},
	"core/conf":           {},
	"core/ipq":            {},
	"stores/seqset":       {},
	"stores/rawsync":      {}, // raw fsync/fdatasync/fstat/pwrite and their policy: filestore's and boltstore's
	"stores/chunked":      {},
	"boltcheck":           {}, // validates a bbolt file before bbolt maps it: boltstore's and the raft log's
	"proto/stanpb":        {},
	"proto/raftpb":        {},
	"proto/storepb":       {},
	"core/auth":           {"core/subject"},
	"core":                {"core/wire", "core/subject", "core/auth", "core/ipq"},
	"core/monitor":        {"core"},
	"stores":              {},
	"stores/memstore":     {"stores", "stores/seqset", "proto/storepb"},
	"stores/filestore":    {"stores", "stores/seqset", "stores/chunked", "stores/rawsync", "proto/storepb"},
	"stores/boltstore":    {"stores", "stores/seqset", "stores/chunked", "stores/rawsync", "proto/storepb", "boltcheck"},
	"stores/storetest":    {"stores", "stores/seqset", "proto/storepb"},
	"stores/nssimport":    {"stores"}, // reads nss files, writes through the stores contract
	"raftlog":             {"boltcheck", "raftlog/seglog"},
	"raftlog/seglog":      {},
	"raftlog/raftlogtest": {"raftlog"},
	"streaming": {"core", "core/subject", "core/ipq", "stores", "stores/seqset", "raftlog",
		"proto/stanpb", "proto/raftpb"},
	"streaming/monitor": {"streaming", "stores", "core/monitor"},
	"streaming/natsbus": {"streaming", "core"},
	"tests":             {"*"},

	// A power-loss layer over filestore's hooks, for tests only.
	"stores/filestore/crashtest": {"stores/filestore"},
}

type goPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T, args ...string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	r, ok := strings.CutPrefix(importPath, module+"/")
	return r, ok
}

// TestImportDirections fails on any import edge the architecture does not allow.
func TestImportDirections(t *testing.T) {
	for _, p := range listPackages(t, "./...") {
		name, _ := rel(p.ImportPath)
		rules, known := allowed[name]
		if strings.HasPrefix(name, "cmd/") {
			rules, known = []string{"*"}, true
		}
		if !known {
			t.Errorf("package %s is not in the architecture table (tests/arch_test.go): decide what it may import", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := rel(imp)
			if !ours {
				continue
			}
			if strings.HasSuffix(path.Base(dep), "test") {
				t.Errorf("%s imports test helper %s: *test packages are for _test.go files only", name, dep)
				continue
			}
			if !allows(rules, dep) {
				t.Errorf("%s imports %s: not allowed by ARCHITECTURE.md (allowed: %v)", name, dep, rules)
			}
		}
	}
}

func allows(rules []string, dep string) bool {
	for _, r := range rules {
		if r == "*" || r == dep {
			return true
		}
	}
	return false
}

// testingImporters are the dependencies allowed to import package testing into the binary:
// github.com/hashicorp/raft has a non-test testing.go (its test helpers), which we cannot
// drop. Importing testing registers nothing until testing.Init, so this costs binary size only.
var testingImporters = map[string]bool{"github.com/hashicorp/raft": true}

// TestBinaryHasNoTesting keeps test code out of the shipped binary: no package of ours, and no
// dependency but those above, imports testing.
func TestBinaryHasNoTesting(t *testing.T) {
	for _, p := range listPackages(t, "-deps", "./cmd/starling") {
		for _, imp := range p.Imports {
			if imp == "testing" && !testingImporters[p.ImportPath] {
				t.Errorf("the starling binary depends on package testing through %s", p.ImportPath)
			}
		}
	}
}
