package secrets

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// LoadFile reads credentials from a YAML map of names to strings (user,
// password, access_key_id, ...). It is the development provider: the CLI's
// --credentials and the agent's credentials.file, which the agent refuses
// unless started with --dev; production credentials come from Vault. The
// file must not be readable by group or others, and errors never quote it.
func LoadFile(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("credentials file %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	var m map[string]string
	if err := yaml.Unmarshal(data, &m); err != nil {
		// The YAML error may quote the file's text: say only where it is.
		return nil, fmt.Errorf("credentials file %s is not a YAML map of strings", path)
	}
	return m, nil
}
