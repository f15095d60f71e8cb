// Package flagconfig fills a command's flags from a YAML config file and from
// EDGEWARDEN_* environment variables, so every option has one name in all
// three places. Precedence, highest first: a flag given on the command line,
// the environment variable, the config file, the flag's default.
//
// A key in the file is the flag name with '-' written as '_' (broker-url →
// broker_url); the environment variable is the prefix plus the key in upper
// case (EDGEWARDEN_BROKER_URL). Unknown keys are an error, so a typo never
// passes silently.
package flagconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Options say where Apply reads from.
type Options struct {
	// File is the YAML config file; empty means none. A missing file is an
	// error: it was asked for.
	File string
	// EnvPrefix is the environment variable prefix, e.g. "EDGEWARDEN_".
	// Empty means no environment variables are read.
	EnvPrefix string
	// Skip names flags that cannot come from the file or environment
	// (e.g. "config" itself).
	Skip []string
}

// Key returns the config-file key of a flag name.
func Key(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// Apply sets every flag in fs that the command line did not set, from the
// environment and then from the file.
func Apply(fs *pflag.FlagSet, opts Options) error {
	skip := map[string]bool{"help": true}
	for _, s := range opts.Skip {
		skip[s] = true
	}
	file := map[string]string{}
	if opts.File != "" {
		var err error
		if file, err = readFile(opts.File); err != nil {
			return err
		}
	}
	var errs []error
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		if skip[f.Name] {
			return
		}
		key := Key(f.Name)
		known[key] = true
		if f.Changed {
			return
		}
		if opts.EnvPrefix != "" {
			env := opts.EnvPrefix + strings.ToUpper(key)
			if v, ok := os.LookupEnv(env); ok {
				if err := fs.Set(f.Name, v); err != nil {
					errs = append(errs, fmt.Errorf("environment %s=%q: %w", env, v, err))
				}
				return
			}
		}
		if v, ok := file[key]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %q: %w", opts.File, key, v, err))
			}
		}
	})
	var unknown []string
	for k := range file {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs = append(errs, fmt.Errorf("%s: unknown option(s) %s; see the documented file in packaging/config", opts.File, strings.Join(unknown, ", ")))
	}
	return errors.Join(errs...)
}

// readFile reads a flat YAML mapping of scalars.
func readFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var raw map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) { // io.EOF: only comments
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, n := range raw {
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config %s: %s: want a single value (line %d)", path, k, n.Line)
		}
		out[k] = n.Value
	}
	return out, nil
}
