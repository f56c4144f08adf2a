package ferry_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocReferences keeps the repository's citations resolvable by whoever clones it: every
// "docs/<name>.md §N" in a tracked source, script, workflow or document must name a file that
// exists and a heading numbered N in it (docs/architecture.md explains the numbering), and
// nothing may cite a document that lives outside the repository (a design note, style guide or
// protocol spec the team keeps elsewhere). A bare "<name>.md §N" is resolved next to the file
// that cites it, so the docs can cite each other as "protocol.md §5".
func TestDocReferences(t *testing.T) {
	t.Parallel()
	files := trackedFiles(t)
	headings := map[string]map[string]bool{} // doc path -> section numbers of its headings
	sections := func(doc string) (map[string]bool, bool) {
		if h, ok := headings[doc]; ok {
			return h, h != nil
		}
		b, err := os.ReadFile(filepath.FromSlash(doc))
		if err != nil {
			headings[doc] = nil
			return nil, false
		}
		h := headingNumbers(b)
		headings[doc] = h
		return h, true
	}

	cited := 0
	for _, f := range files {
		if !citesDocs(f) {
			continue
		}
		b, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range bytes.Split(b, []byte("\n")) {
			if !mayCiteOutside(line) {
				continue
			}
			for _, re := range outsideRefs {
				if m := re.Find(line); m != nil {
					t.Errorf("%s:%d cites %q, a document outside the repository; cite docs/<name>.md §N instead",
						f, i+1, strings.TrimSpace(string(m)))
					break // one report per line
				}
			}
		}
		if !bytes.Contains(b, []byte("§")) {
			continue
		}
		for _, c := range docCitations(f, joinCommentLines(b)) {
			cited++
			nums, ok := sections(c.doc)
			if !ok {
				t.Errorf("%s cites %s §%s, but %s does not exist", f, c.doc, c.section, c.doc)
				continue
			}
			if !nums[c.section] {
				t.Errorf("%s cites %s §%s, but %s has no heading numbered %s", f, c.doc, c.section, c.doc, c.section)
			}
		}
	}
	if cited == 0 {
		t.Error("found no docs/<name>.md §N citation at all; is the scan broken?")
	}
}

// outsideRefs match citations of documents that are not in the repository.
var outsideRefs = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\bspec\s*§`),
	regexp.MustCompile(`\bspec/[\w.-]+\.md\b`),
	regexp.MustCompile(`(?:^|[^\w/.-])(?:DESIGN|STYLE|platform|signing|capgo-protocol)\.md\b`),
	regexp.MustCompile(`\b(?:DESIGN|STYLE)(?:\.md)?\s+(?:§|rule\s+\d)`),
	regexp.MustCompile(`\.\./shared/`),
}

// mayCiteOutside is a cheap filter in front of outsideRefs: every match contains one of these.
func mayCiteOutside(line []byte) bool {
	for _, s := range []string{"§", ".md", "shared/", "rule"} {
		if bytes.Contains(line, []byte(s)) {
			return true
		}
	}
	return false
}

// citation is one "<doc> §<section>" reference.
type citation struct{ doc, section string }

var (
	// citeRE matches a document path followed by a section number; follow-ups such as
	// ", §4", " and §1.3(e)" or "–§7" are taken by followRE.
	citeRE   = regexp.MustCompile(`(?m)(?:^|[^\w/.-])((?:[\w.-]+/)*[\w-]+\.md) §(\d+(?:\.\d+)*)`)
	followRE = regexp.MustCompile(`^(?:\([a-z]\))?(?:, step \d+)?(?:,\s*|\s+and\s+|\s+or\s+|\s*[–-]\s*)§(\d+(?:\.\d+)*)`)
)

// docCitations returns the citations in text, with doc as a slash path from the repository
// root: "docs/…" anywhere in the path means the repository's docs directory, and a bare name
// is taken relative to the citing file's directory.
func docCitations(file, text string) []citation {
	var out []citation
	for _, m := range citeRE.FindAllStringSubmatchIndex(text, -1) {
		ref := text[m[2]:m[3]]
		doc := path.Join(path.Dir(file), ref)
		if i := strings.LastIndex(ref, "docs/"); i >= 0 {
			doc = ref[i:]
		}
		out = append(out, citation{doc, text[m[4]:m[5]]})
		rest := text[m[1]:]
		for {
			f := followRE.FindStringSubmatchIndex(rest)
			if f == nil {
				break
			}
			out = append(out, citation{doc, rest[f[2]:f[3]]})
			rest = rest[f[1]:]
		}
	}
	return out
}

// commentBreak is a line break inside a comment or paragraph: the newline, the indentation and
// a comment marker of the next line ("//", "#", "*").
var commentBreak = regexp.MustCompile(`[ \t]*\n[ \t]*(?:(?://+|#|\*)[ \t]?)?[ \t]*`)

// joinCommentLines joins wrapped lines so that a citation broken across two comment lines
// ("docs/protocol.md\n// §6") is still seen whole.
func joinCommentLines(b []byte) string {
	return commentBreak.ReplaceAllString(string(b), " ")
}

var headingRE = regexp.MustCompile(`^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s`)

// headingNumbers returns the section numbers of a Markdown document's headings ("## 3." and
// "### 3.2 …" give "3" and "3.2"), ignoring fenced code blocks.
func headingNumbers(md []byte) map[string]bool {
	nums := map[string]bool{}
	fenced := false
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil && !fenced {
			nums[m[1]] = true
		}
	}
	return nums
}

// citesDocs reports whether a file is one whose text may cite documents: sources, scripts,
// workflows, manifests and documents. This file is left out: its patterns would match.
func citesDocs(f string) bool {
	if f == "docrefs_test.go" {
		return false
	}
	switch path.Base(f) {
	case "Makefile", "Dockerfile", "run":
		return true
	}
	switch path.Ext(f) {
	case ".go", ".md", ".sh", ".yml", ".yaml", ".java", ".js", ".lua":
		return true
	}
	return false
}

// trackedFiles lists the repository's files as slash paths from its root: git's index when
// git is available, else a walk of the tree that skips what .gitignore keeps out.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("git", "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		return strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	}
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch p {
			case ".git", "bin", "data", ".demo", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, filepath.ToSlash(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
