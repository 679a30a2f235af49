package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// loadTestConfig loads the configuration `steward config ARGS` would, with
// FILE (if not empty) as the config file and env as the whole environment.
func loadTestConfig(t *testing.T, file string, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("steward config", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := registerConfigFlags(fs)
	fs.String("addr", "", "listen address")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	*configPath = ""
	if file != "" {
		*configPath = filepath.Join(t.TempDir(), "steward.yaml")
		if err := os.WriteFile(*configPath, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return loadConfigEnv(fs, *configPath, func(name string) string { return env[name] })
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://bob@127.0.0.1/steward", "postgres://bob@127.0.0.1/steward"},
		{"postgres://bob:hunter2@127.0.0.1/steward", "postgres://bob:REDACTED@127.0.0.1/steward"},
		{"postgres://bob@127.0.0.1/steward?password=hunter3", "postgres://bob@127.0.0.1/steward?password=REDACTED"},
		{"postgres://bob@db/steward?sslmode=verify-full&sslpassword=k3y&sslkey=/etc/k.pem", "postgres://bob@db/steward?sslmode=verify-full&sslpassword=REDACTED&sslkey=/etc/k.pem"},
		{"postgresql://bob:a@db/s?PASSWORD=b&application_name=steward", "postgresql://bob:REDACTED@db/s?PASSWORD=REDACTED&application_name=steward"},
		{"postgres://db/s?pass%77ord=hunter3", "postgres://db/s?pass%77ord=REDACTED"},
		{"postgres://db/s?password", "postgres://db/s?password=REDACTED"},
		// Does not parse: where the secret is cannot be told, so all of it goes.
		{"postgres://bob:hun%zzter@db/s", "REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := redactURL(tt.in); got != tt.want {
				t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRunConfigRedacts(t *testing.T) {
	for _, name := range []string{"STEWARD_CONFIG", "STEWARD_DATABASE", "STEWARD_KEYS_DATABASE", "STEWARD_WECHAT_APP_ID", "STEWARD_WECHAT_APP_SECRET"} {
		t.Setenv(name, "")
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // lines of the output
	}{
		{
			name: "password in the query string, keys database derived",
			args: []string{"--database", "postgres://bob@127.0.0.1/steward?password=hunter3"},
			want: []string{
				"database: postgres://bob@127.0.0.1/steward?password=REDACTED",
				"keys_database: postgres://bob@127.0.0.1/steward_keys?password=REDACTED",
			},
		},
		{
			name: "passwords in user info and sslpassword, both databases",
			args: []string{
				"--database", "postgres://bob:hunter2@db/steward?sslpassword=hunter4",
				"--keys-database", "postgres://kim@db/steward_keys?sslmode=require&password=hunter5",
			},
			want: []string{
				"database: postgres://bob:REDACTED@db/steward?sslpassword=REDACTED",
				"keys_database: postgres://kim@db/steward_keys?sslmode=require&password=REDACTED",
			},
		},
		{
			name: "wechat secret",
			env:  map[string]string{"STEWARD_WECHAT_APP_ID": "wx123", "STEWARD_WECHAT_APP_SECRET": "hunter6"},
			want: []string{"wechat_app_id: wx123", "wechat_app_secret: REDACTED"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			if code := runConfig(context.Background(), tt.args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			out := stdout.String()
			if strings.Contains(out, "hunter") {
				t.Errorf("output holds a secret:\n%s", out)
			}
			lines := strings.Split(out, "\n")
			for _, want := range tt.want {
				if !contains(lines, want) {
					t.Errorf("output lacks line %q:\n%s", want, out)
				}
			}
		})
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestLoadConfigRefuses(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		// log_level
		{name: "log_level in file", file: "log_level: verbose\n", want: `config FILE:1: log_level must be debug, info, warn or error (got "verbose")`},
		{name: "log_level in env", env: map[string]string{"STEWARD_LOG_LEVEL": "trace"}, want: `config: STEWARD_LOG_LEVEL (log_level) must be debug, info, warn or error (got "trace")`},
		// trust_proxy
		{name: "trust_proxy yes in env", env: map[string]string{"STEWARD_TRUST_PROXY": "yes"}, want: "config: STEWARD_TRUST_PROXY (trust_proxy) must be true, false, 1 or 0"},
		{name: "trust_proxy TRUE in env", env: map[string]string{"STEWARD_TRUST_PROXY": "TRUE"}, want: "config: STEWARD_TRUST_PROXY (trust_proxy) must be true, false, 1 or 0"},
		{name: "trust_proxy in file", file: "trust_proxy: sometimes\n", want: "config FILE:1: trust_proxy must be true or false"},
		// addr
		{name: "addr without port", file: "addr: localhost\n", want: `config FILE:1: addr must be HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:8080 (got "localhost")`},
		{name: "addr port too big in env", env: map[string]string{"STEWARD_ADDR": "127.0.0.1:65536"}, want: `config: STEWARD_ADDR (addr) must be HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:8080 (got "127.0.0.1:65536")`},
		{name: "addr named port by flag", args: []string{"--addr", ":http"}, want: `config: --addr (addr) must be HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:8080 (got ":http")`},
		{name: "addr negative port", file: "addr: '[::1]:-1'\n", want: `config FILE:1: addr must be HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:8080 (got "[::1]:-1")`},
		// otp
		{name: "per_phone_per_hour negative", file: "otp:\n  per_phone_per_hour: -1\n", want: "config FILE:2: otp.per_phone_per_hour must not be negative"},
		{name: "per_phone_per_hour too many", file: "otp:\n  per_phone_per_hour: 1001\n", want: "config FILE:2: otp.per_phone_per_hour must be from 1 to 1000 (got 1001)"},
		{name: "per_phone_per_hour not a number in env", env: map[string]string{"STEWARD_OTP_PER_PHONE_PER_HOUR": "5abc"}, want: "config: STEWARD_OTP_PER_PHONE_PER_HOUR (otp.per_phone_per_hour) must be a whole number"},
		{name: "per_phone_per_hour not a number in file", file: "otp:\n  per_phone_per_hour: 5.5\n", want: "config FILE:2: otp.per_phone_per_hour must be a whole number"},
		{name: "per_client_per_hour too many in env", env: map[string]string{"STEWARD_OTP_PER_CLIENT_PER_HOUR": "100001"}, want: "config: STEWARD_OTP_PER_CLIENT_PER_HOUR (otp.per_client_per_hour) must be from 1 to 100000 (got 100001)"},
		{name: "per_client_per_hour negative in env", env: map[string]string{"STEWARD_OTP_PER_CLIENT_PER_HOUR": "-3"}, want: "config: STEWARD_OTP_PER_CLIENT_PER_HOUR (otp.per_client_per_hour) must not be negative"},
		{name: "resend_interval negative", file: "otp:\n  resend_interval: -1s\n", want: "config FILE:2: otp.resend_interval must not be negative"},
		{name: "resend_interval too short", file: "otp:\n  resend_interval: 500ms\n", want: "config FILE:2: otp.resend_interval must be from 1s to 1h (got 500ms)"},
		{name: "resend_interval too long in env", env: map[string]string{"STEWARD_OTP_RESEND_INTERVAL": "61m"}, want: "config: STEWARD_OTP_RESEND_INTERVAL (otp.resend_interval) must be from 1s to 1h (got 1h1m)"},
		{name: "resend_interval not a duration in env", env: map[string]string{"STEWARD_OTP_RESEND_INTERVAL": "60"}, want: "config: STEWARD_OTP_RESEND_INTERVAL (otp.resend_interval) must be a duration such as 90s, 10m or 168h"},
		{name: "resend_interval not a duration in file", file: "otp:\n  resend_interval: 60\n", want: "config FILE:2: otp.resend_interval must be a duration such as 90s, 10m or 168h"},
		// durations
		{name: "key_backup_retention too short", file: "key_backup_retention: 59m\n", want: "config FILE:1: key_backup_retention must be at least 1h (got 59m)"},
		{name: "key_backup_retention negative", file: "key_backup_retention: -168h\n", want: "config FILE:1: key_backup_retention must not be negative"},
		{name: "recipient_notice_deadline too short in env", env: map[string]string{"STEWARD_RECIPIENT_NOTICE_DEADLINE": "30m"}, want: "config: STEWARD_RECIPIENT_NOTICE_DEADLINE (recipient_notice_deadline) must be at least 1h (got 30m)"},
		{name: "recipient_notice_deadline negative", file: "recipient_notice_deadline: -1h\n", want: "config FILE:1: recipient_notice_deadline must not be negative"},
		{name: "maintenance_interval too short", file: "maintenance_interval: 30s\n", want: "config FILE:1: maintenance_interval must be from 1m to 24h (got 30s)"},
		{name: "maintenance_interval too long", file: "maintenance_interval: 25h\n", want: "config FILE:1: maintenance_interval must be from 1m to 24h (got 25h)"},
		{name: "maintenance_interval negative in env", env: map[string]string{"STEWARD_MAINTENANCE_INTERVAL": "-1m"}, want: "config: STEWARD_MAINTENANCE_INTERVAL (maintenance_interval) must not be negative"},
		// several bad variables are all reported
		{
			name: "two bad variables",
			env:  map[string]string{"STEWARD_TRUST_PROXY": "on", "STEWARD_OTP_PER_PHONE_PER_HOUR": "five"},
			want: "config: STEWARD_OTP_PER_PHONE_PER_HOUR (otp.per_phone_per_hour) must be a whole number\nconfig: STEWARD_TRUST_PROXY (trust_proxy) must be true, false, 1 or 0",
		},
		// the environment overrides the file, and the message says so
		{name: "env over file", file: "log_level: debug\n", env: map[string]string{"STEWARD_LOG_LEVEL": "loud"}, want: `config: STEWARD_LOG_LEVEL (log_level) must be debug, info, warn or error (got "loud")`},
		// the file's shape
		{name: "unknown key in a section", file: "otp:\n  per_phone_per_hour: 5\n  per_phone_hour: 5\n", want: `config FILE:3: unknown key "otp.per_phone_hour"`},
		{name: "unknown top-level key", file: "# comment\nlog_level: info\nloglevel: debug\n", want: `config FILE:3: unknown key "loglevel"`},
		{name: "dotted key at top level", file: "otp.resend_interval: 1m\n", want: `config FILE:1: unknown key "otp.resend_interval"`},
		{name: "key set twice", file: "addr: :1\ndata: d\naddr: :2\n", want: "config FILE:3: addr is set twice, first at line 1"},
		{name: "section not a mapping", file: "otp: 5\n", want: "config FILE:1: otp must be a mapping of keys to values"},
		{name: "file not a mapping", file: "- addr\n", want: "config FILE:1: the file must be a mapping of keys to values"},
		{name: "not YAML", file: "addr: :1\n  data: d\n", want: "config FILE:2: mapping values are not allowed in this context"},
		// database URLs: messages never quote them
		{name: "database not postgres", args: []string{"--database", "mysql://bob:hunter2@db/s"}, want: "config: --database (database) must be a postgres:// URL, or empty for SQLite in the data directory"},
		{name: "keys_database unparseable", env: map[string]string{"STEWARD_KEYS_DATABASE": "postgres://bob:hun%zzter@db/s"}, want: "config: STEWARD_KEYS_DATABASE (keys_database) is not a valid URL (a password with %, # or / in it must be percent-encoded)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadTestConfig(t, tt.file, tt.env, tt.args...)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			got := err.Error()
			if i := strings.Index(got, "steward.yaml"); i >= 0 {
				// config /tmp/…/steward.yaml:LINE → config FILE:LINE
				got = "config FILE" + got[i+len("steward.yaml"):]
			}
			if got != tt.want {
				t.Errorf("error:\n got %q\nwant %q", got, tt.want)
			}
			if strings.Contains(got, "hunter") || strings.Contains(got, "struct") {
				t.Errorf("error holds a secret or a Go type: %q", got)
			}
		})
	}
}

func TestLoadConfigAccepts(t *testing.T) {
	const day = 24 * time.Hour
	defaults := func(c *Config) {}
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want func(*Config) // applied to the defaults in force
	}{
		{name: "nothing set", want: defaults},
		{
			name: "zero and empty mean the default",
			file: "addr: ''\ndata: ''\nlog_level: ''\nsqlite_synchronous:\notp:\n  per_phone_per_hour: 0\n  per_client_per_hour: 0\n  resend_interval: 0s\nkey_backup_retention: 0s\nrecipient_notice_deadline: 0s\nmaintenance_interval: 0s\n",
			want: defaults,
		},
		{name: "empty file", file: "# nothing yet\n", want: defaults},
		{name: "empty otp section", file: "otp:\n", want: defaults},
		{
			name: "lower bounds",
			file: "addr: ':0'\notp:\n  per_phone_per_hour: 1\n  per_client_per_hour: 1\n  resend_interval: 1s\nkey_backup_retention: 1h\nrecipient_notice_deadline: 1h\nmaintenance_interval: 1m\n",
			want: func(c *Config) {
				c.Addr = ":0"
				c.OTP.PerPhonePerHour, c.OTP.PerClientPerHour, c.OTP.ResendInterval = 1, 1, time.Second
				c.KeyBackupRetention, c.NoticeDeadline, c.MaintenanceInterval = time.Hour, time.Hour, time.Minute
			},
		},
		{
			name: "upper bounds from env",
			env: map[string]string{
				"STEWARD_ADDR": "[::1]:65535", "STEWARD_OTP_PER_PHONE_PER_HOUR": "1000", "STEWARD_OTP_PER_CLIENT_PER_HOUR": "100000",
				"STEWARD_OTP_RESEND_INTERVAL": "1h", "STEWARD_MAINTENANCE_INTERVAL": "24h", "STEWARD_KEY_BACKUP_RETENTION": "720h",
			},
			want: func(c *Config) {
				c.Addr = "[::1]:65535"
				c.OTP.PerPhonePerHour, c.OTP.PerClientPerHour, c.OTP.ResendInterval = 1000, 100000, time.Hour
				c.MaintenanceInterval, c.KeyBackupRetention = day, 30*day
			},
		},
		{name: "log level in capitals", env: map[string]string{"STEWARD_LOG_LEVEL": "WARN"}, want: func(c *Config) { c.LogLevel = "warn" }},
		{name: "trust_proxy 1", env: map[string]string{"STEWARD_TRUST_PROXY": "1"}, want: func(c *Config) { c.TrustProxy = true }},
		{name: "trust_proxy 0 over the file", file: "trust_proxy: true\n", env: map[string]string{"STEWARD_TRUST_PROXY": "0"}, want: defaults},
		{name: "trust_proxy false over the file", file: "trust_proxy: true\n", env: map[string]string{"STEWARD_TRUST_PROXY": "false"}, want: defaults},
		{name: "trust_proxy in file", file: "trust_proxy: true\n", want: func(c *Config) { c.TrustProxy = true }},
		{name: "flag over env over file", file: "addr: ':1'\n", env: map[string]string{"STEWARD_ADDR": ":2"}, args: []string{"--addr", ":3"}, want: func(c *Config) { c.Addr = ":3" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadTestConfig(t, tt.file, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig()
			want.KeyFile, want.DevSink = filepath.Join("data", "steward.key"), filepath.Join("data", "messages.jsonl")
			want.OTP.PerPhonePerHour, want.OTP.PerClientPerHour, want.OTP.ResendInterval = 5, 20, time.Minute
			want.KeyBackupRetention, want.NoticeDeadline, want.MaintenanceInterval = 7*day, 7*day, time.Hour
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigSettings keeps Config.settings in step with the fields: every
// leaf yaml key of Config is listed once, with a STEWARD_* variable named
// after it.
func TestConfigSettings(t *testing.T) {
	var want []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := prefix + f.Tag.Get("yaml")
			if f.Type.Kind() == reflect.Struct {
				walk(key+".", f.Type)
				continue
			}
			want = append(want, key)
		}
	}
	walk("", reflect.TypeOf(Config{}))
	var c Config
	var got []string
	for _, s := range c.settings() {
		got = append(got, s.key)
		if env := "STEWARD_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_")); s.env != env {
			t.Errorf("%s: env %s, want %s", s.key, s.env, env)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings keys (-fields +settings):\n%s", diff)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 24 * time.Hour: "24h", time.Minute: "1m", time.Second: "1s", 90 * time.Second: "1m30s",
		61 * time.Minute: "1h1m", 500 * time.Millisecond: "500ms", 90 * time.Minute: "1h30m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
