package manifest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const validManifest = `{"name":"hello","version":"1.2.3","publisher":"acme","runtime":"process",
"exec":{"command":"bin/hello","args":["--port","8080"]},
"artifacts":[{"path":"bin/hello","sha256":"` + hex64 + `","size":10,"mode":493},
             {"path":"lib/app.tar.gz","sha256":"` + hex64 + `","size":20,"unpack":"tar.gz"}],
"dependencies":[{"name":"base","version":">=1.0.0 <2.0.0"}],
"upgrade":{"min_from":"1.0.0"},"description":"says hello"}`

const hex64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestParseValid(t *testing.T) {
	m, err := Parse([]byte(validManifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "hello" || m.SemVer().String() != "1.2.3" || len(m.Artifacts) != 2 || m.Artifacts[0].Mode != 0o755 ||
		m.Dependencies[0].Version != ">=1.0.0 <2.0.0" || m.Upgrade.MinFrom != "1.0.0" || m.Exec.Args[1] != "8080" {
		t.Fatalf("parsed %+v", m)
	}
}

// Each bad manifest is refused with ErrInvalid and a message naming the
// problem.
func TestParseRefuses(t *testing.T) {
	art := func(path string) string {
		return `{"name":"a","version":"1.0.0","publisher":"acme","runtime":"process","exec":{"command":"run"},` +
			`"artifacts":[{"path":` + path + `,"sha256":"` + hex64 + `","size":1}]}`
	}
	base := func(field, value string) string {
		return strings.Replace(validManifest, field, value, 1)
	}
	for _, c := range []struct{ name, raw, want string }{
		{"not json", `hello`, "not a manifest"},
		{"trailing data", validManifest + `{}`, "trailing"},
		{"unknown field", base(`"description"`, `"evil":1,"description"`), "unknown field"},
		{"bad name", base(`"name":"hello"`, `"name":"Hello World"`), "name"},
		{"name with slash", base(`"name":"hello"`, `"name":"../x"`), "name"},
		{"bad publisher", base(`"publisher":"acme"`, `"publisher":""`), "publisher"},
		{"bad version", base(`"version":"1.2.3"`, `"version":"v1.2"`), "version"},
		{"leading zero", base(`"version":"1.2.3"`, `"version":"01.2.3"`), "leading zero"},
		{"runtime", base(`"runtime":"process"`, `"runtime":"docker"`), "runtime"},
		{"exec dotdot", base(`"command":"bin/hello"`, `"command":"../../bin/sh"`), ".."},
		{"exec absolute", base(`"command":"bin/hello"`, `"command":"/bin/sh"`), "absolute"},
		{"dotdot path", art(`"../etc/passwd"`), ".."},
		{"inner dotdot", art(`"bin/../../x"`), ".."},
		{"absolute path", art(`"/etc/passwd"`), "absolute"},
		{"unclean path", art(`"bin//x"`), "not clean"},
		{"dot path", art(`"./x"`), "not clean"},
		{"trailing slash", art(`"bin/"`), "not clean"},
		{"backslash", art(`"bin\\x"`), "backslash"},
		{"reserved", art(`".edgewarden/manifest.json"`), "reserved"},
		{"empty path", art(`""`), "empty"},
		{"duplicate path", base(`"lib/app.tar.gz"`, `"bin/hello"`), "twice"},
		{"duplicate by case", base(`"lib/app.tar.gz"`, `"BIN/hello"`), "twice"},
		{"short digest", base(hex64+`","size":10`, `abc","size":10`), "sha256"},
		{"uppercase digest", base(hex64+`","size":10`, strings.ToUpper(hex64)+`","size":10`), "sha256"},
		{"zero size", base(`"size":10`, `"size":0`), "size"},
		{"negative size", base(`"size":10`, `"size":-5`), "size"},
		{"huge size", base(`"size":10`, `"size":99999999999999`), "size"},
		{"setuid mode", base(`"mode":493`, `"mode":2541`), "mode"},
		{"unpack kind", base(`"unpack":"tar.gz"`, `"unpack":"zip"`), "unpack"},
		{"no artifacts", `{"name":"a","version":"1.0.0","publisher":"acme","runtime":"process","exec":{"command":"run"},"artifacts":[]}`, "no artifacts"},
		{"bad range", base(`">=1.0.0 <2.0.0"`, `"about 1"`), "dependency base"},
		{"self dependency", base(`"name":"base"`, `"name":"hello"`), "itself"},
		{"bad min_from", base(`"min_from":"1.0.0"`, `"min_from":"one"`), "min_from"},
		{"oversized", `{"description":"` + strings.Repeat("x", MaxBytes) + `"}`, "limit"},
	} {
		_, err := Parse([]byte(c.raw))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want ErrInvalid mentioning %q, got %v", c.name, c.want, err)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	order := []string{"0.0.1", "0.1.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, err := ParseVersion(order[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ParseVersion(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	a, _ := ParseVersion("1.0.0+build.1")
	b, _ := ParseVersion("1.0.0+build.2")
	if a.Compare(b) != 0 || a.String() != "1.0.0+build.1" {
		t.Error("build metadata must not affect precedence and must round-trip")
	}
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "v1.2.3", "1.2.x", "1.2.3-", "1.2.3-01", "1.2.3+", "1..3", "-1.2.3", "1.2.3-a b", "99999999999999999999.0.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func TestRange(t *testing.T) {
	for _, c := range []struct {
		r       string
		in, out []string
	}{
		{">=1.2.0 <2.0.0", []string{"1.2.0", "1.9.9"}, []string{"1.1.9", "2.0.0"}},
		{"^1.2", []string{"1.2.0", "1.99.0"}, []string{"1.1.0", "2.0.0", "2.0.0-rc.1"}},
		{"^1.2.3", []string{"1.2.3", "1.3.0"}, []string{"1.2.2", "2.0.0"}},
		{"^0.2.3", []string{"0.2.3", "0.2.9"}, []string{"0.3.0", "0.2.2"}},
		{"^0.0.3", []string{"0.0.3"}, []string{"0.0.4"}},
		{"^0", []string{"0.0.0", "0.9.9"}, []string{"1.0.0"}},
		{"~1.2.3", []string{"1.2.3", "1.2.9"}, []string{"1.3.0", "1.2.2"}},
		{"~1", []string{"1.0.0", "1.9.0"}, []string{"2.0.0"}},
		{"=1.0.0", []string{"1.0.0", "1.0.0+b"}, []string{"1.0.1", "1.0.0-rc.1"}},
		{"1.0.0", []string{"1.0.0"}, []string{"1.0.1"}},
		{"1.2", []string{"1.2.0", "1.2.7"}, []string{"1.3.0", "1.1.9"}},
		{">1.2", []string{"1.3.0"}, []string{"1.2.9"}},
		{"<=1.2", []string{"1.2.9"}, []string{"1.3.0"}},
		{">1.2.0", []string{"1.2.1"}, []string{"1.2.0"}},
		{"<=1.2.0", []string{"1.2.0"}, []string{"1.2.1"}},
		{"*", []string{"0.0.1", "9.9.9"}, nil},
	} {
		r, err := ParseRange(c.r)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", c.r, err)
		}
		for _, s := range c.in {
			if v, _ := ParseVersion(s); !r.Contains(v) {
				t.Errorf("%q should contain %s", c.r, s)
			}
		}
		for _, s := range c.out {
			if v, _ := ParseVersion(s); r.Contains(v) {
				t.Errorf("%q should not contain %s", c.r, s)
			}
		}
	}
	for _, bad := range []string{"", "  ", ">=", "^x", "1.2.3 || 2.0.0", "!1.0.0", ">=1.0.0.0", strings.Repeat(">=1.0.0 ", 9)} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}

func TestCheckPathLimit(t *testing.T) {
	if err := CheckPath(strings.Repeat("a", MaxPathLen)); err != nil {
		t.Errorf("path of %d bytes: %v", MaxPathLen, err)
	}
	if err := CheckPath(strings.Repeat("a", MaxPathLen+1)); err == nil {
		t.Error("overlong path accepted")
	}
	if err := CheckPath(fmt.Sprintf("a%cb", 0)); err == nil {
		t.Error("NUL accepted")
	}
}
