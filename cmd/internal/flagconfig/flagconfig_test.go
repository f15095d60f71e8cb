package flagconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func flags(t *testing.T, args ...string) (*pflag.FlagSet, *string, *time.Duration) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addr := fs.String("broker-url", "", "")
	ttl := fs.Duration("document-ttl", time.Hour, "")
	fs.String("config", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs, addr, ttl
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "broker_url: tls://file:8883\ndocument_ttl: 2h\n")

	fs, url, ttl := flags(t)
	if err := Apply(fs, Options{File: file, EnvPrefix: "EWTEST_", Skip: []string{"config"}}); err != nil {
		t.Fatal(err)
	}
	if *url != "tls://file:8883" || *ttl != 2*time.Hour {
		t.Fatalf("from file: %q %v", *url, *ttl)
	}

	t.Setenv("EWTEST_BROKER_URL", "tls://env:8883")
	fs, url, _ = flags(t)
	if err := Apply(fs, Options{File: file, EnvPrefix: "EWTEST_"}); err != nil {
		t.Fatal(err)
	}
	if *url != "tls://env:8883" {
		t.Fatalf("environment must beat the file: %q", *url)
	}

	fs, url, _ = flags(t, "--broker-url", "tls://flag:8883")
	if err := Apply(fs, Options{File: file, EnvPrefix: "EWTEST_"}); err != nil {
		t.Fatal(err)
	}
	if *url != "tls://flag:8883" {
		t.Fatalf("the command line must beat everything: %q", *url)
	}
}

func TestBadConfig(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key": "brokr_url: x\n",
		"bad value":   "document_ttl: forever\n",
		"not scalar":  "broker_url: [a, b]\n",
		"not yaml":    "broker_url: 'unterminated\n",
	} {
		t.Run(name, func(t *testing.T) {
			fs, url, ttl := flags(t)
			err := Apply(fs, Options{File: writeFile(t, body)})
			if err == nil {
				t.Fatal("accepted")
			}
			if name == "unknown key" && !strings.Contains(err.Error(), "brokr_url") {
				t.Fatalf("error does not name the key: %v", err)
			}
			if *url != "" || (name != "bad value" && *ttl != time.Hour) {
				t.Fatalf("a refused config changed settings: %q %v", *url, *ttl)
			}
		})
	}
	fs, _, _ := flags(t)
	if err := Apply(fs, Options{File: filepath.Join(t.TempDir(), "missing.yaml")}); err == nil {
		t.Fatal("a missing config file was accepted")
	}
	fs, _, _ = flags(t)
	if err := Apply(fs, Options{File: writeFile(t, "# only comments\n")}); err != nil {
		t.Fatalf("a file of comments: %v", err)
	}
}
