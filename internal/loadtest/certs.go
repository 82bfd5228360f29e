package loadtest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ferry-ai/ferry/internal/pki"
)

// Tenant is the tenant of every simulated agent's certificate: the
// operator's, whose token submits the jobs.
const Tenant = pki.DefaultTenant

// agentID names simulated agent i of n; the names sort in index order, as
// the scheduler compares agent IDs.
func agentID(i, n int) string {
	width := max(4, len(fmt.Sprint(n-1)))
	return fmt.Sprintf("loadtest-agent-%0*d", width, i)
}

// pkiSet is the CA, the control plane's server certificate and one client
// certificate per simulated agent.
type pkiSet struct {
	dir    string
	roots  *x509.CertPool
	ids    []string
	certs  []tls.Certificate
	issued time.Duration // time to make the n agent certificates
}

// issueCerts writes a development CA and the control plane's certificate
// into dir (pki.DevCerts) and issues n agent certificates from that CA the
// way enrollment does: each agent gets its own ECDSA P-256 key and
// certificate request (pki.NewKeyAndCSR), signed by CA.SignAgent for its own
// identity (common name = agent ID). The agents' keys stay in memory.
func issueCerts(dir string, n int, validity time.Duration) (*pkiSet, error) {
	// DevCerts also makes an "agent" certificate; the load test does not use it.
	if err := pki.DevCerts(dir, "loadtest-unused", validity); err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CAFile), filepath.Join(dir, pki.CAKeyFile))
	if err != nil {
		return nil, err
	}
	roots, err := pki.LoadCAPool(filepath.Join(dir, pki.CAFile))
	if err != nil {
		return nil, err
	}
	set := &pkiSet{dir: dir, roots: roots}
	start := time.Now()
	for i := range n {
		id := agentID(i, n)
		key, csr, err := pki.NewKeyAndCSR(id)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", id, err)
		}
		cert, err := ca.SignAgent(csr, pki.AgentIdentity{AgentID: id, Tenant: Tenant}, validity)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", id, err)
		}
		set.ids = append(set.ids, id)
		set.certs = append(set.certs, tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert})
	}
	set.issued = time.Since(start)
	return set, nil
}
