package jwtguard

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryJSONKey keeps the README's reference in step with
// the config structs: every JSON key must appear in it as `key` or "key".
func TestREADMEDocumentsEveryJSONKey(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{Handler{}, Secret{}, TokenSource{}, WebsocketConfig{}, Rule{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || key == "" || key == "-" {
				continue
			}
			if !strings.Contains(string(readme), "`"+key+"`") && !strings.Contains(string(readme), `"`+key+`"`) {
				t.Errorf("README.md does not mention %s's JSON key %q", typ.Name(), key)
			}
		}
	}
}

// TestREADMEListsEveryDirectDependency checks the Dependencies table against
// go.mod's direct requirements.
func TestREADMEListsEveryDirectDependency(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, deps, _ := strings.Cut(string(readme), "## Dependencies")
	deps, _, _ = strings.Cut(deps, "\n## ")
	data, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	// go.mod lists requirements one per line, in require blocks or after
	// `require`; indirect ones are marked.
	n := 0
	inBlock := false
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case fields[0] == "require" && len(fields) > 1 && fields[1] == "(":
			inBlock = true
			continue
		case inBlock && fields[0] == ")":
			inBlock = false
			continue
		case fields[0] == "require" && len(fields) >= 3:
			fields = fields[1:]
		case !inBlock:
			continue
		}
		if strings.Contains(line, "// indirect") {
			continue
		}
		n++
		if !strings.Contains(deps, "`"+fields[0]+"`") {
			t.Errorf("the README's Dependencies table does not list %s", fields[0])
		}
	}
	if n == 0 {
		t.Fatal("found no direct requirement in go.mod")
	}
}
