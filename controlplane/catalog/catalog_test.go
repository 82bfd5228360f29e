package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/catalog"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/metadb/metadbtest"
)

func TestCatalog(t *testing.T) {
	metadbtest.Each(t, func(t *testing.T, db *metadb.DB) {
		ctx := context.Background()
		c, err := catalog.Open(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		acme, err := c.CreateTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		globex, _ := c.CreateTenant(ctx, "globex")
		if _, err := c.CreateTenant(ctx, "acme"); !errors.Is(err, catalog.ErrExists) {
			t.Errorf("a second acme: %v", err)
		}
		cn, err := c.CreateConnection(ctx, catalog.Connection{Tenant: acme.ID, Name: "warehouse", Kind: "postgres",
			Settings:  map[string]string{"host": "db.acme.internal", "port": "5432", "database": "analytics", "schema": "sales", "output_schema": "ferry_out"},
			VaultPath: "database/creds/ferry-agent", CreatedBy: "ada@acme"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateConnection(ctx, catalog.Connection{Tenant: acme.ID, Name: "warehouse", Kind: "duckdb"}); !errors.Is(err, catalog.ErrExists) {
			t.Errorf("a second connection of that name: %v", err)
		}
		got, err := c.Connection(ctx, acme.ID, cn.ID)
		if err != nil || got.Settings["host"] != "db.acme.internal" || got.VaultPath != "database/creds/ferry-agent" || got.CreatedBy != "ada@acme" {
			t.Fatalf("connection %+v %v", got, err)
		}
		if _, err := c.Connection(ctx, globex.ID, cn.ID); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("another tenant read the connection: %v", err)
		}
		got.Settings["schema"] = "crm"
		if _, err := c.UpdateConnection(ctx, got); err != nil {
			t.Fatal(err)
		}
		if list, _ := c.Connections(ctx, acme.ID); len(list) != 1 || list[0].Settings["schema"] != "crm" {
			t.Errorf("connections %+v", list)
		}
		q, err := c.SaveQuery(ctx, catalog.Query{Tenant: acme.ID, Name: "churn", PQL: "PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id",
			OutputTable: "churn_predictions", Connection: cn.ID, CreatedBy: "ada@acme"})
		if err != nil {
			t.Fatal(err)
		}
		if qs, _ := c.Queries(ctx, acme.ID); len(qs) != 1 || qs[0].ID != q.ID {
			t.Errorf("queries %+v", qs)
		}
		if qs, _ := c.Queries(ctx, globex.ID); len(qs) != 0 {
			t.Errorf("globex sees %+v", qs)
		}
		if err := c.DeleteQuery(ctx, globex.ID, q.ID); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("globex deleted acme's query: %v", err)
		}
		c.SaveQuery(ctx, catalog.Query{Tenant: globex.ID, Name: "g", PQL: "PREDICT x", OutputTable: "t"})
		n, err := c.DeleteTenant(ctx, acme.ID)
		if err != nil || n["connections"] != 1 || n["saved_queries"] != 1 || n["tenants"] != 1 {
			t.Fatalf("DeleteTenant = %v, %v", n, err)
		}
		var left int
		for table, col := range map[string]string{"tenants": "id", "connections": "tenant", "saved_queries": "tenant"} {
			var k int
			if err := db.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+col+` = ?`, acme.ID).Scan(&k); err != nil {
				t.Fatal(err)
			}
			left += k
		}
		if left != 0 {
			t.Errorf("%d rows of the deleted tenant remain", left)
		}
		if qs, _ := c.Queries(ctx, globex.ID); len(qs) != 1 {
			t.Errorf("deleting acme touched globex: %+v", qs)
		}
	})
}

// TestConnectionRefusals: malformed connections, and every way a
// credential could slip into the settings, are refused naming the field.
func TestConnectionRefusals(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.Open(ctx, metadbtest.Open(t, metadb.SQLite), nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := c.CreateTenant(ctx, "acme")
	for _, tc := range []struct {
		name string
		cn   catalog.Connection
		want string
	}{
		{"password setting", catalog.Connection{Name: "w", Kind: "postgres", Settings: map[string]string{"password": "x"}}, "setting password names a credential"},
		{"secret key setting", catalog.Connection{Name: "w", Kind: "s3", Settings: map[string]string{"aws_secret_access_key": "x"}}, "names a credential"},
		{"private key setting", catalog.Connection{Name: "w", Kind: "snowflake", Settings: map[string]string{"private_key_path": "/k"}}, "names a credential"},
		{"token setting", catalog.Connection{Name: "w", Kind: "databricks", Settings: map[string]string{"access_token": "dapi"}}, "names a credential"},
		{"url with a password", catalog.Connection{Name: "w", Kind: "postgres", Settings: map[string]string{"url": "postgres://u:hunter2@db/x"}}, "looks like a credential"},
		{"pem", catalog.Connection{Name: "w", Kind: "bigquery", Settings: map[string]string{"sa": "-----BEGIN PRIVATE KEY-----"}}, "looks like a credential"},
		{"aws access key id", catalog.Connection{Name: "w", Kind: "s3", Settings: map[string]string{"id": "AKIAIOSFODNN7EXAMPLE"}}, "looks like a credential"},
		{"unknown kind", catalog.Connection{Name: "w", Kind: "oracle"}, `kind "oracle"`},
		{"bad name", catalog.Connection{Name: "", Kind: "duckdb"}, "connection name"},
		{"bad setting name", catalog.Connection{Name: "w", Kind: "duckdb", Settings: map[string]string{"Path": "x"}}, `setting "Path"`},
		{"bad vault path", catalog.Connection{Name: "w", Kind: "duckdb", VaultPath: "../etc"}, "vault_path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cn.Tenant = tn.ID
			_, err := c.CreateConnection(ctx, tc.cn)
			if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want ErrInvalid with %q", err, tc.want)
			}
			for _, v := range tc.cn.Settings {
				if err != nil && len(v) > 3 && strings.Contains(err.Error(), v) {
					t.Errorf("the refusal echoes the value")
				}
			}
		})
	}
	if _, err := c.CreateConnection(ctx, catalog.Connection{Tenant: "t-nope", Name: "w", Kind: "duckdb"}); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("a connection for an unknown tenant: %v", err)
	}
}
