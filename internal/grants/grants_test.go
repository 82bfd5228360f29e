package grants_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-ai/ferry/internal/grants"
)

// TestGenerate pins each kind's output for a small example: the exact text
// an admin runs.
func TestGenerate(t *testing.T) {
	tests := []struct {
		name string
		plan grants.Plan
		want string
	}{
		{
			name: "postgres tables, quoted names and a whole schema",
			plan: grants.Plan{Kind: grants.Postgres, Read: []string{`sales.orders`, `sales."order items"`, `sales."a""b"`, `Sales.Orders`, `sales."Ärger"`, `crm`}, Write: "ferry_out"},
			want: `-- Ferry agent: least-privilege grants for PostgreSQL (ferry grants postgres).
-- Run as a superuser, or as a CREATEROLE role that owns these schemas and tables.
CREATE ROLE "ferry_agent" LOGIN;
-- Set its password where no log records it, e.g. psql's \password "ferry_agent"
GRANT USAGE ON SCHEMA "sales" TO "ferry_agent";
GRANT SELECT ON TABLE "sales"."orders" TO "ferry_agent";
GRANT SELECT ON TABLE "sales"."order items" TO "ferry_agent";
GRANT SELECT ON TABLE "sales"."a""b" TO "ferry_agent";
GRANT SELECT ON TABLE "sales"."Ärger" TO "ferry_agent";
GRANT USAGE ON SCHEMA "crm" TO "ferry_agent";
GRANT SELECT ON ALL TABLES IN SCHEMA "crm" TO "ferry_agent";
-- Future tables created by the role running this (give --owner for another creator):
ALTER DEFAULT PRIVILEGES IN SCHEMA "crm" GRANT SELECT ON TABLES TO "ferry_agent";
CREATE SCHEMA IF NOT EXISTS "ferry_out";
GRANT USAGE, CREATE ON SCHEMA "ferry_out" TO "ferry_agent";
`,
		},
		{
			name: "postgres for Vault's per-job users",
			plan: grants.Plan{Kind: grants.Postgres, Read: []string{`sales`}, Write: `"ferry out"`, Vault: true},
			want: `-- Ferry agent: least-privilege grants for PostgreSQL (ferry grants postgres).
-- Run as a superuser, or as a CREATEROLE role that owns these schemas and tables.
CREATE ROLE "ferry_agent" NOLOGIN;
GRANT USAGE ON SCHEMA "sales" TO "ferry_agent";
GRANT SELECT ON ALL TABLES IN SCHEMA "sales" TO "ferry_agent";
-- Future tables created by the role running this (give --owner for another creator):
ALTER DEFAULT PRIVILEGES IN SCHEMA "sales" GRANT SELECT ON TABLES TO "ferry_agent";
CREATE SCHEMA IF NOT EXISTS "ferry out";
GRANT USAGE, CREATE ON SCHEMA "ferry out" TO "ferry_agent";

-- Vault's database secrets engine makes a login user per job, a member of "ferry_agent":
--   vault write database/roles/ferry-agent db_name=<connection> default_ttl=1h max_ttl=24h \
--     creation_statements=@creation.sql revocation_statements=@revocation.sql
-- creation.sql:
--   CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE "ferry_agent";
-- revocation.sql (ends the user's sessions, then drops it; it owns nothing):
--   SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';
--   DROP ROLE IF EXISTS "{{name}}";
-- The agent's Vault policy, and nothing more:
--   path "database/creds/ferry-agent" { capabilities = ["read"] }
--   path "sys/leases/renew" { capabilities = ["update"] }
--   path "sys/leases/revoke" { capabilities = ["update"] }
-- The agent's warehouse URL:
--   postgres://<host>:5432/<database>?schema=sales&output_schema=ferry+out&write_role=ferry_agent
`,
		},
		{
			name: "postgres role granted to a user, owner, database; a whole schema covers its tables",
			plan: grants.Plan{Kind: grants.Postgres, Read: []string{`crm.accounts`, `crm.*`}, Write: `"Ferry Out"`,
				Role: "ferry_reader", User: `"Alice"`, Owner: "etl", Database: "analytics"},
			want: `-- Ferry agent: least-privilege grants for PostgreSQL (ferry grants postgres).
-- Run as a superuser, or as a CREATEROLE role that owns these schemas and tables.
CREATE ROLE "ferry_reader" NOLOGIN;
GRANT CONNECT ON DATABASE "analytics" TO "ferry_reader";
GRANT USAGE ON SCHEMA "crm" TO "ferry_reader";
GRANT SELECT ON ALL TABLES IN SCHEMA "crm" TO "ferry_reader";
ALTER DEFAULT PRIVILEGES FOR ROLE "etl" IN SCHEMA "crm" GRANT SELECT ON TABLES TO "ferry_reader";
CREATE SCHEMA IF NOT EXISTS "Ferry Out";
GRANT USAGE, CREATE ON SCHEMA "Ferry Out" TO "ferry_reader";
GRANT "ferry_reader" TO "Alice";
`,
		},
		{
			name: "redshift user",
			plan: grants.Plan{Kind: grants.Redshift, Read: []string{`sales.orders`, `sales."a""b"`}, Write: "ferry_out"},
			want: `-- Ferry agent: least-privilege grants for Redshift (ferry grants redshift).
-- Run as a superuser, or as a CREATEROLE role that owns these schemas and tables.
CREATE USER "ferry_agent" PASSWORD DISABLE;
-- Then give it a password (ALTER USER "ferry_agent" PASSWORD ...) or sign in with IAM credentials.
GRANT USAGE ON SCHEMA "sales" TO "ferry_agent";
GRANT SELECT ON TABLE "sales"."orders" TO "ferry_agent";
GRANT SELECT ON TABLE "sales"."a""b" TO "ferry_agent";
CREATE SCHEMA IF NOT EXISTS "ferry_out";
GRANT USAGE, CREATE ON SCHEMA "ferry_out" TO "ferry_agent";
`,
		},
		{
			name: "redshift role granted to a user, future tables of another creator",
			plan: grants.Plan{Kind: grants.Redshift, Read: []string{`sales.orders`, `crm`}, Write: "ferry_out", User: "Alice", Owner: "etl"},
			want: `-- Ferry agent: least-privilege grants for Redshift (ferry grants redshift).
-- Run as a superuser, or as a CREATEROLE role that owns these schemas and tables.
CREATE ROLE "ferry_agent";
GRANT USAGE ON SCHEMA "sales" TO ROLE "ferry_agent";
GRANT SELECT ON TABLE "sales"."orders" TO ROLE "ferry_agent";
GRANT USAGE ON SCHEMA "crm" TO ROLE "ferry_agent";
GRANT SELECT ON ALL TABLES IN SCHEMA "crm" TO ROLE "ferry_agent";
ALTER DEFAULT PRIVILEGES FOR USER "etl" IN SCHEMA "crm" GRANT SELECT ON TABLES TO ROLE "ferry_agent";
CREATE SCHEMA IF NOT EXISTS "ferry_out";
GRANT USAGE, CREATE ON SCHEMA "ferry_out" TO ROLE "ferry_agent";
GRANT ROLE "ferry_agent" TO "alice";
`,
		},
		{
			name: "snowflake folds unquoted names to upper case",
			plan: grants.Plan{Kind: grants.Snowflake, Read: []string{`analytics.sales.orders`, `analytics.sales."order items"`, `analytics.sales."a""b"`, `raw.crm`},
				Write: "analytics.ferry_out", Warehouse: "ferry_wh", User: "svc_ferry"},
			want: `-- Ferry agent: least-privilege grants for Snowflake (ferry grants snowflake).
-- Run as a role that owns these objects or holds MANAGE GRANTS.
CREATE ROLE IF NOT EXISTS "FERRY_AGENT";
GRANT USAGE ON WAREHOUSE "FERRY_WH" TO ROLE "FERRY_AGENT";
GRANT USAGE ON DATABASE "ANALYTICS" TO ROLE "FERRY_AGENT";
GRANT USAGE ON DATABASE "RAW" TO ROLE "FERRY_AGENT";
GRANT USAGE ON SCHEMA "ANALYTICS"."SALES" TO ROLE "FERRY_AGENT";
GRANT SELECT ON TABLE "ANALYTICS"."SALES"."ORDERS" TO ROLE "FERRY_AGENT";
GRANT SELECT ON TABLE "ANALYTICS"."SALES"."order items" TO ROLE "FERRY_AGENT";
GRANT SELECT ON TABLE "ANALYTICS"."SALES"."a""b" TO ROLE "FERRY_AGENT";
GRANT USAGE ON SCHEMA "RAW"."CRM" TO ROLE "FERRY_AGENT";
GRANT SELECT ON ALL TABLES IN SCHEMA "RAW"."CRM" TO ROLE "FERRY_AGENT";
GRANT SELECT ON FUTURE TABLES IN SCHEMA "RAW"."CRM" TO ROLE "FERRY_AGENT";
CREATE SCHEMA IF NOT EXISTS "ANALYTICS"."FERRY_OUT";
GRANT USAGE, CREATE TABLE ON SCHEMA "ANALYTICS"."FERRY_OUT" TO ROLE "FERRY_AGENT";
GRANT ROLE "FERRY_AGENT" TO USER "SVC_FERRY";
`,
		},
		{
			name: "databricks quotes with backticks",
			plan: grants.Plan{Kind: grants.Databricks, Read: []string{"main.sales.orders", `main.sales."a""b"`, "main.sales.`x``y`", "main.crm"},
				Write: "main.ferry_out", User: "ferry-agent@example.com"},
			want: "-- Ferry agent: least-privilege grants for Databricks Unity Catalog (ferry grants databricks).\n" +
				"-- The principal also needs CAN USE on the SQL warehouse it queries (a workspace permission, not SQL).\n" +
				"GRANT USE CATALOG ON CATALOG `main` TO `ferry-agent@example.com`;\n" +
				"GRANT USE SCHEMA ON SCHEMA `main`.`sales` TO `ferry-agent@example.com`;\n" +
				"GRANT SELECT ON TABLE `main`.`sales`.`orders` TO `ferry-agent@example.com`;\n" +
				"GRANT SELECT ON TABLE `main`.`sales`.`a\"b` TO `ferry-agent@example.com`;\n" +
				"GRANT SELECT ON TABLE `main`.`sales`.`x``y` TO `ferry-agent@example.com`;\n" +
				"GRANT USE SCHEMA ON SCHEMA `main`.`crm` TO `ferry-agent@example.com`;\n" +
				"GRANT SELECT ON SCHEMA `main`.`crm` TO `ferry-agent@example.com`;\n" +
				"CREATE SCHEMA IF NOT EXISTS `main`.`ferry_out`;\n" +
				"GRANT USE SCHEMA, CREATE TABLE, MODIFY ON SCHEMA `main`.`ferry_out` TO `ferry-agent@example.com`;\n",
		},
		{
			name: "bigquery commands, a table with a space, jobs in another project",
			plan: grants.Plan{Kind: grants.BigQuery, Read: []string{"acme-data.sales.orders", `acme-data.sales."order items"`, "acme-data.crm"},
				Write: "acme-data.ferry_out", User: "ferry-agent@acme-jobs.iam.gserviceaccount.com", Project: "acme-jobs"},
			want: "# Ferry agent: least-privilege grants for BigQuery (ferry grants bigquery).\n" +
				"# Run as a project IAM admin who owns the datasets (roles/bigquery.dataOwner).\n" +
				"# Project acme-jobs: run query jobs and open Storage Read API read sessions (no data access by themselves).\n" +
				"gcloud projects add-iam-policy-binding 'acme-jobs' --member='serviceAccount:ferry-agent@acme-jobs.iam.gserviceaccount.com' --role='roles/bigquery.jobUser' --condition=None\n" +
				"gcloud projects add-iam-policy-binding 'acme-jobs' --member='serviceAccount:ferry-agent@acme-jobs.iam.gserviceaccount.com' --role='roles/bigquery.readSessionUser' --condition=None\n" +
				"# Read: the datasets and tables the agent reads.\n" +
				"bq query --project_id='acme-jobs' --nouse_legacy_sql 'GRANT `roles/bigquery.dataViewer` ON TABLE `acme-data.sales.orders` TO \"serviceAccount:ferry-agent@acme-jobs.iam.gserviceaccount.com\"'\n" +
				"bq query --project_id='acme-jobs' --nouse_legacy_sql 'GRANT `roles/bigquery.dataViewer` ON TABLE `acme-data.sales.order items` TO \"serviceAccount:ferry-agent@acme-jobs.iam.gserviceaccount.com\"'\n" +
				"bq query --project_id='acme-jobs' --nouse_legacy_sql 'GRANT `roles/bigquery.dataViewer` ON SCHEMA `acme-data.crm` TO \"serviceAccount:ferry-agent@acme-jobs.iam.gserviceaccount.com\"'\n" +
				"# Write: the output dataset, which must exist (bq --location=LOCATION mk --dataset acme-data:ferry_out).\n" +
				"bq query --project_id='acme-jobs' --nouse_legacy_sql 'GRANT `roles/bigquery.dataEditor` ON SCHEMA `acme-data.ferry_out` TO \"serviceAccount:ferry-agent@acme-jobs.iam.gserviceaccount.com\"'\n",
		},
		{
			name: "s3 policy, two read prefixes in one bucket",
			plan: grants.Plan{Kind: grants.S3, Read: []string{"s3://acme-lake/sales", "s3://acme-lake/crm/?region=eu-west-1", "s3://acme-lake/sales/"}, Write: "s3://acme-lake/ferry/out"},
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "FerryList",
      "Effect": "Allow",
      "Action": [
        "s3:ListBucket"
      ],
      "Resource": [
        "arn:aws:s3:::acme-lake"
      ],
      "Condition": {
        "StringLike": {
          "s3:prefix": [
            "sales/",
            "sales/*",
            "crm/",
            "crm/*",
            "ferry/out/",
            "ferry/out/*"
          ]
        }
      }
    },
    {
      "Sid": "FerryRead",
      "Effect": "Allow",
      "Action": [
        "s3:GetObject"
      ],
      "Resource": [
        "arn:aws:s3:::acme-lake/sales/*",
        "arn:aws:s3:::acme-lake/crm/*"
      ]
    },
    {
      "Sid": "FerryWriteOutput",
      "Effect": "Allow",
      "Action": [
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload"
      ],
      "Resource": [
        "arn:aws:s3:::acme-lake/ferry/out/*"
      ]
    }
  ]
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := grants.Generate(tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestS3PolicyShape checks the policy as data: a whole-bucket read lists
// the bucket without a prefix condition, a percent-encoded prefix is decoded
// (as the connector decodes it), and special characters survive JSON.
func TestS3PolicyShape(t *testing.T) {
	out, err := grants.Generate(grants.Plan{Kind: grants.S3, Read: []string{"s3://acme-lake", "s3://other.bucket/a%20b/<x>&y"}, Write: "s3://acme-out/ferry"})
	if err != nil {
		t.Fatal(err)
	}
	var pol struct {
		Version   string
		Statement []struct {
			Sid       string
			Action    []string
			Resource  []string
			Condition map[string]map[string][]string
		}
	}
	if err := json.Unmarshal([]byte(out), &pol); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if pol.Version != "2012-10-17" || len(pol.Statement) != 5 {
		t.Fatalf("want version 2012-10-17 and 5 statements (3 list, read, write), got %s", out)
	}
	if s := pol.Statement[0]; s.Resource[0] != "arn:aws:s3:::acme-lake" || s.Condition != nil {
		t.Errorf("whole-bucket read: want ListBucket on acme-lake without condition, got %+v", s)
	}
	if got := pol.Statement[1].Condition["StringLike"]["s3:prefix"]; strings.Join(got, "|") != "a b/<x>&y/|a b/<x>&y/*" {
		t.Errorf("prefix condition: got %q", got)
	}
	if got := pol.Statement[3].Resource; strings.Join(got, "|") != "arn:aws:s3:::acme-lake/*|arn:aws:s3:::other.bucket/a b/<x>&y/*" {
		t.Errorf("read resources: got %q", got)
	}
	if strings.Contains(out, `\u003c`) {
		t.Errorf("policy escapes HTML characters: %s", out)
	}
}

// TestGenerateErrors: bad input is refused with an error wrapping
// ErrInvalid that names what is wrong.
func TestGenerateErrors(t *testing.T) {
	pg := func(read []string, write string) grants.Plan {
		return grants.Plan{Kind: grants.Postgres, Read: read, Write: write}
	}
	long := strings.Repeat("x", 64)
	tests := []struct {
		name string
		plan grants.Plan
		want string // in the error
	}{
		{"no read", pg(nil, "out"), "--read"},
		{"vault with a user", grants.Plan{Kind: grants.Postgres, Read: []string{"s"}, Write: "out", Vault: true, User: "alice"}, "--vault and --user"},
		{"vault on snowflake", grants.Plan{Kind: grants.Snowflake, Read: []string{"db.s"}, Write: "db.out", Warehouse: "wh", Vault: true}, "does not take --vault"},
		{"no write", pg([]string{"s.t"}, ""), "--write"},
		{"unknown kind", grants.Plan{Kind: "oracle", Read: []string{"a"}, Write: "b"}, `unknown kind "oracle"`},
		{"unquoted space", pg([]string{"sales.order items"}, "out"), `"order items" has ' '`},
		{"unquoted non-ASCII", pg([]string{"sales.Ärger"}, "out"), "quote the part"},
		{"unterminated quote", pg([]string{`sales."orders`}, "out"), "unterminated"},
		{"empty quoted part", pg([]string{`sales.""`}, "out"), "empty quoted part"},
		{"text after a quote", pg([]string{`"sales"x.t`}, "out"), `unexpected 'x'`},
		{"trailing dot", pg([]string{"sales."}, "out"), "ends with '.'"},
		{"double dot", pg([]string{"sales..t"}, "out"), "empty part"},
		{"too many parts", pg([]string{"db.sales.t"}, "out"), "want schema or schema.table, got 3"},
		{"wildcard not last", pg([]string{"sales.*.t"}, "out"), "'*' must be the last part"},
		{"table wildcard", pg([]string{"sales.t.*"}, "out"), "want schema or schema.table"},
		{"write a table", pg([]string{"sales"}, "out.t"), `write "out.t"`},
		{"write a read schema", pg([]string{"sales.orders"}, "SALES"), "also reads this schema"},
		{"control character", pg([]string{"sales.\"a\nb\""}, "out"), "control character"},
		{"postgres truncates long names", pg([]string{"sales." + long}, "out"), "at most 63"},
		{"bad role", grants.Plan{Kind: grants.Postgres, Read: []string{"s"}, Write: "o", Role: "a.b"}, `role "a.b"`},
		{"user is the role", grants.Plan{Kind: grants.Postgres, Read: []string{"s"}, Write: "o", User: "FERRY_AGENT"}, "is the role to create"},
		{"owner without a whole schema", grants.Plan{Kind: grants.Postgres, Read: []string{"s.t"}, Write: "o", Owner: "etl"}, "--owner applies to schemas read whole"},
		{"flag of another kind", grants.Plan{Kind: grants.Postgres, Read: []string{"s"}, Write: "o", Warehouse: "wh"}, "postgres does not take --warehouse"},
		{"s3 takes no role", grants.Plan{Kind: grants.S3, Read: []string{"s3://b1/x"}, Write: "s3://b1/y", Role: "r"}, "s3 does not take --role"},
		{"snowflake without warehouse", grants.Plan{Kind: grants.Snowflake, Read: []string{"db.s"}, Write: "db.o"}, "needs --warehouse"},
		{"snowflake one-part read", grants.Plan{Kind: grants.Snowflake, Read: []string{"s"}, Write: "db.o", Warehouse: "w"}, "want database.schema"},
		{"databricks without principal", grants.Plan{Kind: grants.Databricks, Read: []string{"c.s"}, Write: "c.o"}, "needs --user"},
		{"databricks name with a space", grants.Plan{Kind: grants.Databricks, Read: []string{`c.s."order items"`}, Write: "c.o", User: "u"}, "Unity Catalog names cannot hold"},
		{"databricks name with a slash", grants.Plan{Kind: grants.Databricks, Read: []string{`c.s."a/b"`}, Write: "c.o", User: "u"}, `'/'`},
		{"bigquery bad project", grants.Plan{Kind: grants.BigQuery, Read: []string{"P.d"}, Write: "P.o", User: "user:a@b.c"}, `project "P"`},
		{"bigquery bad dataset", grants.Plan{Kind: grants.BigQuery, Read: []string{`my-project."my-data"`}, Write: "my-project.o", User: "user:a@b.c"}, `dataset "my-data"`},
		{"bigquery quote in table", grants.Plan{Kind: grants.BigQuery, Read: []string{`my-project.d."a""b"`}, Write: "my-project.o", User: "user:a@b.c"}, "BigQuery table names cannot hold"},
		{"bigquery member", grants.Plan{Kind: grants.BigQuery, Read: []string{"my-project.d"}, Write: "my-project.o", User: "alice"}, "want an IAM member"},
		{"bigquery member with a quote", grants.Plan{Kind: grants.BigQuery, Read: []string{"my-project.d"}, Write: "my-project.o", User: `user:a"@b.c`}, "want an IAM member"},
		{"bigquery no member", grants.Plan{Kind: grants.BigQuery, Read: []string{"my-project.d"}, Write: "my-project.o"}, "needs --user"},
		{"s3 not s3", grants.Plan{Kind: grants.S3, Read: []string{"https://b1/x"}, Write: "s3://b1/y"}, "want s3://bucket/prefix"},
		{"s3 credentials in URL", grants.Plan{Kind: grants.S3, Read: []string{"s3://key:secret@bucket/x"}, Write: "s3://bucket/y"}, "credentials"},
		{"s3 bad bucket", grants.Plan{Kind: grants.S3, Read: []string{"s3://Bucket_1/x"}, Write: "s3://bucket/y"}, `bucket "Bucket_1"`},
		{"s3 wildcard", grants.Plan{Kind: grants.S3, Read: []string{"s3://bucket/x%2A"}, Write: "s3://bucket/y"}, "wildcard"},
		{"s3 policy variable", grants.Plan{Kind: grants.S3, Read: []string{"s3://bucket/$%7Baws:username%7D"}, Write: "s3://bucket/y"}, "policy variable"},
		{"s3 unknown parameter", grants.Plan{Kind: grants.S3, Read: []string{"s3://bucket/x?y=1"}, Write: "s3://bucket/y"}, `unknown URL parameter "y"`},
		{"s3 output inside a read prefix", grants.Plan{Kind: grants.S3, Read: []string{"s3://bucket/lake"}, Write: "s3://bucket/lake/out"}, "overlaps"},
		{"s3 output over the whole bucket", grants.Plan{Kind: grants.S3, Read: []string{"s3://bucket/lake"}, Write: "s3://bucket"}, "overlaps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := grants.Generate(tt.plan)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if !errors.Is(err, grants.ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestSplitList: commas split names except inside quotes.
func TestSplitList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "a, b ,c", want: []string{"a", "b", "c"}},
		{in: `s."x,y",t`, want: []string{`s."x,y"`, "t"}},
		{in: "s.`x,y`,t", want: []string{"s.`x,y`", "t"}},
		{in: `s."a""b,c"`, want: []string{`s."a""b,c"`}},
		{in: "a,,b", wantErr: true},
		{in: "a,", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := grants.SplitList(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
