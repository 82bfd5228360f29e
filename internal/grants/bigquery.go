package grants

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// BigQuery's naming rules: project ids (optionally domain-scoped), dataset
// ids, and table names (letters, marks, numbers, connectors, dashes and
// spaces, at most 1,024 bytes).
var (
	bqProject = regexp.MustCompile(`^([a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	bqDataset = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	bqMember  = regexp.MustCompile(`^(user|serviceAccount|group|domain|principal|principalSet):[^\s"'\\` + "`" + `]+$`)
)

func checkBigQuery(parts []string) error {
	if err := checkParts(parts); err != nil {
		return err
	}
	if !bqProject.MatchString(parts[0]) {
		return fmt.Errorf("project %q is not a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter)", parts[0])
	}
	if len(parts) > 1 && (!bqDataset.MatchString(parts[1]) || len(parts[1]) > 1024) {
		return fmt.Errorf("dataset %q: dataset names are at most 1,024 letters, digits and underscores", parts[1])
	}
	if len(parts) > 2 {
		t := parts[2]
		if len(t) > 1024 {
			return fmt.Errorf("table %q is longer than 1,024 bytes", t)
		}
		for _, c := range t {
			if !unicode.In(c, unicode.L, unicode.M, unicode.N, unicode.Pc, unicode.Pd, unicode.Zs) {
				return fmt.Errorf("table %q has %q, which BigQuery table names cannot hold", t, c)
			}
		}
	}
	return nil
}

// bqPath quotes a project.dataset[.table] path for GoogleSQL: the checks
// above leave no backtick or backslash to escape.
func bqPath(parts []string) string { return "`" + strings.Join(parts, ".") + "`" }

// bqMemberOf returns the IAM member for Plan.User.
func bqMemberOf(user string) (string, error) {
	user = strings.TrimSpace(user)
	if user == "" {
		return "", errors.New("bigquery needs --user: the IAM member the agent authenticates as, e.g. serviceAccount:ferry-agent@PROJECT.iam.gserviceaccount.com")
	}
	if !strings.Contains(user, ":") && strings.HasSuffix(user, ".gserviceaccount.com") {
		user = "serviceAccount:" + user
	}
	if !bqMember.MatchString(user) {
		return "", fmt.Errorf("user %q: want an IAM member: serviceAccount:…, user:…, group:…, domain:…, principal:… or principalSet:… (no spaces or quotes)", user)
	}
	return user, nil
}

// genBigQuery writes gcloud and bq commands: project roles with gcloud,
// dataset and table roles with BigQuery's GRANT statements run by bq query.
func genBigQuery(p Plan) (string, error) {
	reads, err := parseReads(p.Read, keepRules(), 2, "project.dataset or project.dataset.table", checkBigQuery)
	if err != nil {
		return "", err
	}
	write, err := parseSchema(p.Write, keepRules(), 2, "project.dataset", checkBigQuery, reads)
	if err != nil {
		return "", err
	}
	member, err := bqMemberOf(p.User)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	project := write[0]
	if p.Project != "" {
		if project, err = parseIdent("project", p.Project, keepRules(), func(parts []string) error { return checkBigQuery(parts[:1]) }); err != nil {
			return "", err
		}
	}
	m := shellQuote(member)
	grant := func(role, resource string) string {
		sql := fmt.Sprintf("GRANT `%s` ON %s TO \"%s\"", role, resource, member)
		return fmt.Sprintf("bq query --project_id=%s --nouse_legacy_sql %s", shellQuote(project), shellQuote(sql))
	}
	var s script
	s.line("# Ferry agent: least-privilege grants for BigQuery (ferry grants bigquery).")
	s.line("# Run as a project IAM admin who owns the datasets (roles/bigquery.dataOwner).")
	s.line("# Project %s: run query jobs and open Storage Read API read sessions (no data access by themselves).", project)
	for _, role := range []string{"roles/bigquery.jobUser", "roles/bigquery.readSessionUser"} {
		s.line("gcloud projects add-iam-policy-binding %s --member=%s --role=%s --condition=None", shellQuote(project), m, shellQuote(role))
	}
	s.line("# Read: the datasets and tables the agent reads.")
	for _, sr := range reads {
		if sr.whole {
			s.line("%s", grant("roles/bigquery.dataViewer", "SCHEMA "+bqPath(sr.schema)))
			continue
		}
		for _, t := range sr.tables {
			s.line("%s", grant("roles/bigquery.dataViewer", "TABLE "+bqPath(append(sr.schema[:2:2], t))))
		}
	}
	s.line("# Write: the output dataset, which must exist (bq --location=LOCATION mk --dataset %s:%s).", write[0], write[1])
	s.line("%s", grant("roles/bigquery.dataEditor", "SCHEMA "+bqPath(write)))
	return s.String(), nil
}
