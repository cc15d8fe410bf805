package specref

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// specPath is the contract, relative to the repository root.
const specPath = "docs/SPEC.md"

// self is this file: its fixtures (TestScanner) are not citations.
const self = "internal/specref/specref_test.go"

// lastContractRule is the highest rule id of the contract the repository
// implements; docs/SPEC.md must have a heading for every rule up to it.
const lastContractRule = 54

var (
	// citeRE finds a rule id anywhere in a text: R and one to three digits, as a word.
	citeRE = regexp.MustCompile(`\bR[0-9]{1,3}\b`)
	// headingRE finds a rule heading in docs/SPEC.md: "### R13 When an owner dies".
	headingRE = regexp.MustCompile(`^#{1,6}[ \t]+(R[0-9]{1,3})\b`)
)

// citation is one rule id found in a file.
type citation struct {
	id   string
	file string // slash-separated, relative to the repository root
	line int
}

// cites returns every rule id in text, with its line number.
func cites(file string, text []byte) []citation {
	var out []citation
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		for _, id := range citeRE.FindAllString(sc.Text(), -1) {
			out = append(out, citation{id: id, file: file, line: n})
		}
	}
	return out
}

// headings returns the rule ids of the headings of a spec, in order.
func headings(text []byte) []string {
	var out []string
	inFence := false
	for line := range strings.SplitSeq(string(text), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// repoRoot walks up from the working directory (the package directory under
// go test) to the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// sourceFiles lists the repository's *.go and *.md files, slash-separated
// and relative to root: from git (tracked and untracked files that
// .gitignore does not exclude) where root is a git work tree, else by
// walking the tree without .git.
func sourceFiles(t *testing.T, root string) []string {
	t.Helper()
	wanted := func(p string) bool { return strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".md") }
	var files []string
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err == nil {
		for p := range strings.SplitSeq(string(out), "\x00") {
			if p != "" && wanted(p) {
				files = append(files, p)
			}
		}
		slices.Sort(files)
		return slices.Compact(files)
	}
	t.Logf("git ls-files failed (%v); walking the tree", err)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && wanted(path) {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCitedRulesResolve: every rule id cited in a Go or Markdown file of the
// repository has a heading in docs/SPEC.md (issue #8 item 5).
func TestCitedRulesResolve(t *testing.T) {
	root := repoRoot(t)
	spec, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(specPath)))
	if err != nil {
		t.Fatalf("the contract must be in the repository: %v", err)
	}
	defined := map[string]bool{}
	for _, id := range headings(spec) {
		defined[id] = true
	}

	files := sourceFiles(t, root)
	if !slices.Contains(files, "README.md") {
		t.Fatalf("README.md not among the %d files listed under %s: the listing is broken", len(files), root)
	}
	missing := map[string][]string{} // id -> where cited
	total := 0
	for _, f := range files {
		if f == specPath || f == self {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, still in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cites(f, data) {
			total++
			if !defined[c.id] {
				missing[c.id] = append(missing[c.id], fmt.Sprintf("%s:%d", c.file, c.line))
			}
		}
	}
	if total == 0 {
		t.Fatalf("no rule id cited in %d files: the scan is broken", len(files))
	}
	ids := make([]string, 0, len(missing))
	for id := range missing {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	for _, id := range ids {
		where := missing[id]
		if len(where) > 5 {
			where = append(where[:5:5], fmt.Sprintf("and %d more", len(missing[id])-5))
		}
		t.Errorf("%s is cited but has no heading in %s: %s", id, specPath, strings.Join(where, ", "))
	}
	t.Logf("%d citations in %d files, %d rule headings", total, len(files), len(defined))
}

// TestSpecHeadings: docs/SPEC.md has one heading per rule, R1 to the last
// rule of the contract at least, in order, none twice, none skipped.
func TestSpecHeadings(t *testing.T) {
	spec, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(specPath)))
	if err != nil {
		t.Fatal(err)
	}
	got := headings(spec)
	if len(got) < lastContractRule {
		t.Errorf("%s has %d rule headings, want at least R1…R%d", specPath, len(got), lastContractRule)
	}
	for i, id := range got {
		if want := "R" + strconv.Itoa(i+1); id != want {
			t.Fatalf("rule heading %d is %s, want %s (headings: %v)", i+1, id, want, got)
		}
	}
}

// TestScanner checks the two patterns the tests above rely on.
func TestScanner(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"rules R16–R21 apply", []string{"R16", "R21"}},
		{"// R13: config keys outlive the session", []string{"R13"}},
		{"(R1…R36)", []string{"R1", "R36"}},
		{"R2D2, XR1, R1000, r5, R_1", nil},
		{"TestR10", nil},
		{"Test_R10 and R7.", []string{"R7"}}, // "_" is a word character
	} {
		t.Run(tc.text, func(t *testing.T) {
			var got []string
			for _, c := range cites("x", []byte(tc.text)) {
				got = append(got, c.id)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("cites(%q) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
	spec := "# sysreg\n### R1 Scopes\ntext R9\n```\n### R7 in a fence\n```\n## R2 Values\n#### R3\nR4 no heading\n"
	if got, want := headings([]byte(spec)), []string{"R1", "R2", "R3"}; !slices.Equal(got, want) {
		t.Errorf("headings = %v, want %v", got, want)
	}
}

// compareIDs orders rule ids by number.
func compareIDs(a, b string) int {
	x, _ := strconv.Atoi(a[1:])
	y, _ := strconv.Atoi(b[1:])
	return x - y
}
