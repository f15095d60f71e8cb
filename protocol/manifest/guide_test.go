package manifest

import (
	"strings"
	"testing"
)

func TestGuide(t *testing.T) {
	m, err := Parse([]byte(validManifest)) // hello 1.2.3, needs base >=1.0.0 <2.0.0, min_from 1.0.0
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		installed map[string]string
		opts      GuideOptions
		want      Verdict
		reason    string
	}{
		{"fresh", map[string]string{"base": "1.5.0"}, GuideOptions{}, Allow, ""},
		{"missing dependency", nil, GuideOptions{}, Block, "not installed"},
		{"dependency out of range", map[string]string{"base": "2.0.0"}, GuideOptions{}, Block, "installed is 2.0.0"},
		{"dependency not semver", map[string]string{"base": "latest"}, GuideOptions{}, Warn, "not semver"},
		{"upgrade", map[string]string{"base": "1.0.0", "hello": "1.1.0"}, GuideOptions{}, Allow, ""},
		{"below min_from", map[string]string{"base": "1.0.0", "hello": "0.9.0"}, GuideOptions{}, Block, "only from 1.0.0"},
		{"downgrade", map[string]string{"base": "1.0.0", "hello": "2.0.0"}, GuideOptions{}, Block, "--allow-downgrade"},
		{"downgrade allowed", map[string]string{"base": "1.0.0", "hello": "2.0.0"}, GuideOptions{AllowDowngrade: true}, Warn, "downgrade"},
		{"same version", map[string]string{"base": "1.0.0", "hello": "1.2.3"}, GuideOptions{}, Allow, "already installed"},
	} {
		a := Guide(m, c.installed, c.opts)
		if a.Verdict != c.want || !strings.Contains(strings.Join(a.Reasons, "\n"), c.reason) {
			t.Errorf("%s: got %v %q, want %v mentioning %q", c.name, a.Verdict, a.Reasons, c.want, c.reason)
		}
	}
}
