package abi

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// abiDoc returns ABI.md, the specification this package spells in Go.
func abiDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the text of ABI.md from the heading that starts with
// heading up to the next heading of the same or a higher level.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading)
	if i < 0 {
		t.Fatalf("ABI.md has no heading %q", heading)
	}
	level := strings.Index(heading, " ")
	rest := doc[i+1+len(heading):]
	end := regexp.MustCompile(`\n#{1,` + strconv.Itoa(level) + `} `).FindStringIndex(rest)
	if end == nil {
		return rest
	}
	return rest[:end[0]]
}

// TestDocumentListsEveryStatus: ABI.md section 6 lists exactly the statuses
// of this package, by number and name.
func TestDocumentListsEveryStatus(t *testing.T) {
	rows := regexp.MustCompile(`(?m)^\| (\d+) \| ([A-Z_]+) \|`).FindAllStringSubmatch(section(t, abiDoc(t), "## 6. Status codes"), -1)
	var doc, code []string
	for _, r := range rows {
		doc = append(doc, r[1]+" "+r[2])
	}
	for s := Status(0); s.Valid(); s++ {
		code = append(code, strconv.Itoa(int(s))+" "+s.Name())
	}
	if !slices.Equal(doc, code) {
		t.Fatalf("ABI.md section 6 lists %q; package abi has %q", doc, code)
	}
}

// TestDocumentListsEveryField: the field table of ABI.md section 4 lists
// exactly the fields of this package, by name and number.
func TestDocumentListsEveryField(t *testing.T) {
	rows := regexp.MustCompile(`(?m)^\| ([A-Z_]+) \| (\d+) \|`).FindAllStringSubmatch(section(t, abiDoc(t), "### Message fields"), -1)
	var doc, code []string
	for _, r := range rows {
		doc = append(doc, r[1]+" "+r[2])
	}
	for f := Field(0); f.Valid(); f++ {
		code = append(code, f.Name()+" "+strconv.Itoa(int(f)))
	}
	if !slices.Equal(doc, code) {
		t.Fatalf("ABI.md lists fields %q; package abi has %q", doc, code)
	}
}

// TestDocumentListsEveryFunction: section 5 has one entry per host function
// and section 3 one row per export, in the order of HostFuncs.
func TestDocumentListsEveryFunction(t *testing.T) {
	doc := abiDoc(t)
	var funcs []string
	for _, m := range regexp.MustCompile("(?m)^### `([a-z_]+)\\(").FindAllStringSubmatch(section(t, doc, "## 5. Host functions"), -1) {
		funcs = append(funcs, m[1])
	}
	if !slices.Equal(funcs, HostFuncs()) {
		t.Errorf("ABI.md section 5 documents %q; HostFuncs is %q", funcs, HostFuncs())
	}
	exports := section(t, doc, "## 3. What a plugin exports")
	for _, name := range append(GuestExports(), ExportMemory, ExportInitialize, ExportStart) {
		if !strings.Contains(exports, "\n| `"+name+"` |") {
			t.Errorf("ABI.md section 3 has no row for export %s", name)
		}
	}
	if !strings.HasPrefix(doc, "# Trellis plugin ABI, version "+strconv.Itoa(Version)+"\n") {
		t.Errorf("ABI.md's title does not say version %d", Version)
	}
	if ExportVersion != ExportVersionPrefix+strconv.Itoa(Version) {
		t.Errorf("ExportVersion %q is not %q + %d", ExportVersion, ExportVersionPrefix, Version)
	}
}

// TestDocumentListsEveryHeader: the Headers table of ABI.md names each
// header this package declares, and nothing else.
func TestDocumentListsEveryHeader(t *testing.T) {
	var doc []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section(t, abiDoc(t), "### Headers"), -1) {
		doc = append(doc, m[1])
	}
	code := []string{HeaderErrorCode, HeaderError, HeaderReservedPrefix + "*", HeaderHTTPStatus,
		HeaderParamPrefix + "<name>", HeaderFallback, HeaderDelivery, HeaderDeadLetterError, HeaderDeadLetterErrorCode,
		HeaderDeadLetterSubject, HeaderDeadLetterPlugin, HeaderDeadLetterAttempts, HeaderPrincipal,
		HeaderClaimPrefix + "<name>", HeaderIdentitySeal, HeaderRefusal, HeaderTraceparent, HeaderTracestate}
	if !slices.Equal(doc, code) {
		t.Fatalf("ABI.md's Headers table lists %q; package abi declares %q", doc, code)
	}
}

func TestNamesOfLevels(t *testing.T) {
	var got []string
	for l := Level(0); l <= LevelError+1; l++ {
		if l.Valid() {
			got = append(got, l.Name())
		} else if l.Name() != "" {
			t.Errorf("invalid level %d has name %q", l, l.Name())
		}
	}
	if want := []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}; !slices.Equal(got, want) {
		t.Fatalf("levels %q, want %q", got, want)
	}
	if Status(len(statusNames)).Valid() || Status(-1).Name() != "" || Field(fieldCount).Name() != "" {
		t.Fatal("an out-of-range status or field is valid")
	}
	if len(statusIdents) != len(statusNames) {
		t.Fatalf("%d status names, %d descriptions", len(statusIdents), len(statusNames))
	}
}
