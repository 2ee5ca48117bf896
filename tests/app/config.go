package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// config is what the --config file sets. It is read at start and, under
// --hup reload, again on SIGHUP.
type config struct {
	Greeting string
}

// loadConfig reads the --config file. The path is opened as given each time
// (not resolved once), so a reload follows a switched `current` link.
func loadConfig(path string) (config, error) {
	f, err := os.Open(path)
	if err != nil {
		return config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := parseConfig(f)
	if err != nil {
		return config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig reads `key = value` lines; blank lines and lines starting with
// '#' are skipped. Anything else (no '=', an unknown key) is an error: a
// typo must stop the service at start, not be ignored silently. The offending
// line is not quoted back, only its number: config files may hold secrets and
// errors end up in logs and in systemd's STATUS=.
func parseConfig(r io.Reader) (config, error) {
	var cfg config
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			return config{}, fmt.Errorf(`line %d: want "key = value", found no "="`, n)
		}
		key, value := strings.TrimSpace(line[:eq]), strings.TrimSpace(line[eq+1:])
		switch key {
		case "greeting":
			cfg.Greeting = value
		default:
			return config{}, fmt.Errorf("line %d: unknown key %q (known: greeting)", n, key)
		}
	}
	if err := sc.Err(); err != nil {
		return config{}, err
	}
	return cfg, nil
}
