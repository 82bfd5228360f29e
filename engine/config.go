package engine

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferry-ai/ferry/engine/xgboost"
	"github.com/ferry-ai/ferry/internal/pki"
)

// FileConfig is the YAML configuration of ferry-engine.
type FileConfig struct {
	Addr          string        `yaml:"addr"`
	TLS           pki.Files     `yaml:"tls"`
	QuotaBytes    int64         `yaml:"quota_bytes"`
	MaxQuotaBytes int64         `yaml:"max_quota_bytes"`
	JobTTL        time.Duration `yaml:"job_ttl"`
	Threads       int           `yaml:"threads"`
	MaxRounds     int           `yaml:"max_rounds"`
	// Device chooses XGBoost's device: "cpu" (default) or "cuda" (a build
	// of libxgboost with CUDA and a GPU; see engine/xgboost.DeviceParams).
	Device   string `yaml:"device"`
	LogLevel string `yaml:"log_level"`
	// CRLURL is the control plane's revocation list
	// (https://host:port/v1/pki/crl); with it the engine refuses revoked
	// agents, and refuses every agent while it holds no current list.
	CRLURL     string        `yaml:"crl_url"`
	CRLRefresh time.Duration `yaml:"crl_refresh"`
	// MetricsAddr is the listen address of /metrics, /healthz and /readyz
	// over HTTPS (empty: off).
	MetricsAddr string `yaml:"metrics_addr"`
}

// LoadFileConfig reads a YAML configuration; unknown keys are errors.
func LoadFileConfig(path string) (FileConfig, error) {
	var fc FileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	if fc.Addr == "" {
		return fc, fmt.Errorf("config %s: addr is required", path)
	}
	if fc.QuotaBytes < 0 || fc.MaxQuotaBytes < 0 || fc.Threads < 0 || fc.MaxRounds < 0 || fc.JobTTL < 0 || fc.CRLRefresh < 0 {
		return fc, fmt.Errorf("config %s: quotas, threads, max_rounds, job_ttl and crl_refresh must not be negative", path)
	}
	if fc.Device != "" {
		if _, err := xgboost.DeviceParams(fc.Device); err != nil {
			return fc, fmt.Errorf("config %s: device: %w", path, err)
		}
	}
	return fc, nil
}
