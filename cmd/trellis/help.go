package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	verb, ok := verbs()[args[0]]
	if !ok || len(args) > 1 {
		fmt.Fprintf(stderr, "trellis help: unknown verb %q\n\n%s", strings.Join(args, " "), usage)
		return 2
	}
	// A verb prints its usage where it prints errors; asked for, it is
	// the answer, so it goes to stdout.
	return verb([]string{"--help"}, stdout, stdout)
}

// verbFlags returns each verb's flags, by asking the verb for its usage: the
// flags are declared once, where the verb parses them.
func verbFlags() map[string][]string {
	flagLine := regexp.MustCompile(`(?m)^  -(\S+)`)
	out := map[string][]string{}
	for name, verb := range verbs() {
		var b bytes.Buffer
		verb([]string{"--help"}, &b, &b)
		out[name] = []string{}
		for _, m := range flagLine.FindAllStringSubmatch(b.String(), -1) {
			dash := "--"
			if len(m[1]) == 1 {
				dash = "-"
			}
			out[name] = append(out[name], dash+m[1])
		}
		sort.Strings(out[name])
	}
	return out
}

func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("completion", "Usage: trellis completion bash|zsh|fish\n\nPrints a script that completes trellis's verbs and flags. Load it with\n  bash:  source <(trellis completion bash)\n  zsh:   source <(trellis completion zsh)\n  fish:  trellis completion fish | source", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	flags := verbFlags()
	names := make([]string, 0, len(flags))
	for v := range flags {
		names = append(names, v)
	}
	sort.Strings(names)
	switch pos[0] {
	case "bash", "zsh":
		var cases strings.Builder
		for _, v := range names {
			fmt.Fprintf(&cases, "    %s) flags=%q ;;\n", v, strings.Join(flags[v], " "))
		}
		if pos[0] == "zsh" {
			fmt.Fprintln(stdout, "autoload -U +X bashcompinit && bashcompinit")
		}
		fmt.Fprintf(stdout, `_trellis() {
  local cur=${COMP_WORDS[COMP_CWORD]} flags=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case "${COMP_WORDS[1]}" in
%s  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _trellis trellis
`, strings.Join(append(names, "help"), " "), cases.String())
	case "fish":
		fmt.Fprintf(stdout, "complete -c trellis -f -n __fish_use_subcommand -a %q\n", strings.Join(append(names, "help"), " "))
		for _, v := range names {
			for _, f := range flags[v] {
				opt := "-l " + strings.TrimPrefix(f, "--")
				if !strings.HasPrefix(f, "--") {
					opt = "-s " + strings.TrimPrefix(f, "-")
				}
				fmt.Fprintf(stdout, "complete -c trellis -n '__fish_seen_subcommand_from %s' %s\n", v, opt)
			}
		}
	default:
		fmt.Fprintf(stderr, "trellis completion: shell %q: want bash, zsh or fish\n", pos[0])
		return 2
	}
	return 0
}

// logLevels are the levels --log-level takes, as the config's log_level.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// levelFlag registers a --log-level flag that refuses anything but
// logLevels, naming them, as the config refuses a bad log_level.
func levelFlag(fs *flag.FlagSet, def, usage string) *string {
	v := &levelValue{level: def}
	usage += ": " + strings.Join(logLevels, ", ")
	fs.Var(v, "log-level", usage)
	return &v.level
}

// levelValue is a log level as a flag.Value.
type levelValue struct{ level string }

func (v *levelValue) String() string { return v.level }

func (v *levelValue) Set(s string) error {
	for _, l := range logLevels {
		if strings.EqualFold(s, l) {
			v.level = l
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(logLevels, ", "))
}
