package plugin

import (
	"strings"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/host/internal/plugin/internal/wasmbin"
)

// Language names the language wasm was written in, for people: the
// module's trellis.language section (abi.SectionLanguage), else the
// language its producers section records, else "go" for a module with
// Go's build id section, else "unknown". It reads custom sections only,
// each within its bounds, and never fails.
func Language(wasm []byte) string {
	m, err := wasmbin.Parse(wasm)
	if err != nil {
		return "unknown"
	}
	var producers string
	goBuild := false
	for _, s := range m.Sections {
		if s.ID != wasmbin.Custom {
			continue
		}
		r := wasmbin.NewReader(s.Payload)
		name := string(r.Name())
		if r.Err() != nil {
			continue
		}
		switch name {
		case abi.SectionLanguage:
			if lang := cleanLanguage(string(s.Payload[r.Offset():])); lang != "" {
				return lang
			}
		case "producers":
			if producers == "" {
				producers = producersLanguage(r)
			}
		case "go:buildid":
			goBuild = true
		}
	}
	switch {
	case producers != "":
		return producers
	case goBuild:
		return "go"
	}
	return "unknown"
}

// producersLanguage reads the first value of the producers section's
// "language" field (tool conventions' producers section: fields of
// name-version pairs), lower-cased, with a C or C++ standard's year
// dropped ("C11" is "c").
func producersLanguage(r *wasmbin.Reader) string {
	fields := r.Count("producers fields", 16, 2)
	for range fields {
		field := string(r.Name())
		values := r.Count("producers values", 64, 2)
		for i := range values {
			value := string(r.Name())
			r.Name() // version
			if r.Err() != nil {
				return ""
			}
			if field == "language" && i == 0 {
				lang := strings.ToLower(value)
				switch {
				case strings.HasPrefix(lang, "c++"):
					lang = "c++"
				case strings.HasPrefix(lang, "c") && strings.Trim(lang[1:], "0123456789") == "":
					lang = "c"
				}
				return cleanLanguage(lang)
			}
		}
	}
	return ""
}

// cleanLanguage returns lang if it is a short name of printable ASCII
// letters, digits, '+', '-', '#' or '.', lower-cased; else "".
func cleanLanguage(lang string) string {
	if lang == "" || len(lang) > abi.MaxLanguage {
		return ""
	}
	for _, c := range lang {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+-#.", c)) {
			return ""
		}
	}
	return strings.ToLower(lang)
}
