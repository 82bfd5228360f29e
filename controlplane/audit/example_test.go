package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// Append two actions, verify the chain and export it as JSON lines.
func ExampleLog() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	db, err := metadb.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	key := []byte("an example key of at least 32 bytes, from Vault in production")
	log, err := audit.Open(ctx, db, &audit.Options{Key: key})
	if err != nil {
		panic(err)
	}
	for _, e := range []audit.Entry{
		{Tenant: "acme", ActorKind: audit.User, Actor: "ana@acme.test", Action: "job.submit", Target: "job/j-1",
			Outcome: audit.Success, Remote: "203.0.113.7:51234", Details: map[string]string{"query_id": "q-42"}},
		{Tenant: "acme", ActorKind: audit.Support, Actor: "sam@ferry.test", Action: "support.approve", Target: "ticket/t-9",
			Outcome: audit.Denied},
	} {
		if _, err := log.Append(ctx, e); err != nil {
			panic(err)
		}
	}
	rep, err := log.Verify(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(rep)

	exported, err := os.Create(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		panic(err)
	}
	defer exported.Close()
	if _, err := log.Export(ctx, exported, audit.Filter{Since: time.Now().Add(-24 * time.Hour)}); err != nil {
		panic(err)
	}
	if _, err := exported.Seek(0, 0); err != nil {
		panic(err)
	}
	rep, err = audit.VerifyExport(exported, key)
	if err != nil {
		panic(err)
	}
	fmt.Println(rep)
	// Output:
	// chain intact: 2 entries from seq 1 to 2 (hmac-sha256)
	// chain intact: 2 entries from seq 1 to 2 (hmac-sha256)
}
