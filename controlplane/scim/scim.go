// Package scim serves the SCIM 2.0 provisioning protocol (RFC 7643 and
// 7644) through which a tenant's identity provider (Okta, Microsoft Entra
// ID, …) creates, updates, deactivates and deletes its users and groups in
// the control plane: /Users and /Groups with list filters, POST, GET, PUT,
// PATCH and DELETE, plus /ServiceProviderConfig, /ResourceTypes and
// /Schemas.
//
// The protocol is this package's; storage is a Directory the control plane
// provides (its users and groups), and authentication (the IdP's bearer
// token, which names the tenant) is the caller's middleware: Handler reads
// the tenant with the TenantFrom function it is given.
package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Schema URNs.
const (
	SchemaUser        = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup       = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaList        = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaPatch       = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SchemaError       = "urn:ietf:params:scim:api:messages:2.0:Error"
	SchemaSPConfig    = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	SchemaResourceTyp = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
)

// Errors a Directory returns (wrapped) for the protocol's error answers.
var (
	ErrNotFound = errors.New("not found")      // 404
	ErrConflict = errors.New("already exists") // 409 uniqueness
)

// User is a provisioned user: the attributes Ferry keeps.
type User struct {
	ID          string
	ExternalID  string
	UserName    string
	DisplayName string
	GivenName   string
	FamilyName  string
	Email       string
	Active      bool
	Created     time.Time
	Modified    time.Time
	// Groups are the IDs and names of the groups the user is in (read
	// only; group membership is set through /Groups).
	Groups []Member
}

// Group is a provisioned group; its members are users.
type Group struct {
	ID          string
	ExternalID  string
	DisplayName string
	Members     []Member
	Created     time.Time
	Modified    time.Time
}

// Member is a reference to a user (in a group) or a group (in a user).
type Member struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
}

// Filter is the one filter form identity providers send: an attribute
// compared for equality (userName, externalId, displayName, emails.value).
// The zero Filter matches everything.
type Filter struct {
	Attr, Value string
}

// Directory stores a tenant's users and groups. Deactivating or deleting a
// user must end their sessions and API tokens at once.
type Directory interface {
	CreateUser(ctx context.Context, tenant string, u User) (User, error)
	GetUser(ctx context.Context, tenant, id string) (User, error)
	// ListUsers returns the users matching f, in a stable order, from the
	// 0-based offset, at most count, and the total matching.
	ListUsers(ctx context.Context, tenant string, f Filter, offset, count int) ([]User, int, error)
	// ReplaceUser stores u (its ID set) in place of the user.
	ReplaceUser(ctx context.Context, tenant string, u User) (User, error)
	DeleteUser(ctx context.Context, tenant, id string) error
	CreateGroup(ctx context.Context, tenant string, g Group) (Group, error)
	GetGroup(ctx context.Context, tenant, id string) (Group, error)
	ListGroups(ctx context.Context, tenant string, f Filter, offset, count int) ([]Group, int, error)
	// ReplaceGroup stores g, members included, in place of the group.
	ReplaceGroup(ctx context.Context, tenant string, g Group) (Group, error)
	DeleteGroup(ctx context.Context, tenant, id string) error
}

// MaxPage is the most resources one list answer holds.
const MaxPage = 200

// maxBody bounds a request body.
const maxBody = 1 << 20

// Handler serves SCIM under prefix (e.g. "/scim/v2"). tenantFrom returns
// the tenant the request's credentials belong to ("" answers 401). log
// receives the Directory's failures (nil discards them); the IdP is told
// only that the directory failed.
func Handler(prefix string, dir Directory, tenantFrom func(*http.Request) string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{dir: dir, tenantFrom: tenantFrom, prefix: strings.TrimSuffix(prefix, "/"), log: log}
	mux := http.NewServeMux()
	p := h.prefix
	mux.HandleFunc("GET "+p+"/ServiceProviderConfig", h.spConfig)
	mux.HandleFunc("GET "+p+"/ResourceTypes", h.resourceTypes)
	mux.HandleFunc("GET "+p+"/Schemas", h.schemas)
	mux.HandleFunc("GET "+p+"/Users", h.listUsers)
	mux.HandleFunc("POST "+p+"/Users", h.createUser)
	mux.HandleFunc("GET "+p+"/Users/{id}", h.getUser)
	mux.HandleFunc("PUT "+p+"/Users/{id}", h.replaceUser)
	mux.HandleFunc("PATCH "+p+"/Users/{id}", h.patchUser)
	mux.HandleFunc("DELETE "+p+"/Users/{id}", h.deleteUser)
	mux.HandleFunc("GET "+p+"/Groups", h.listGroups)
	mux.HandleFunc("POST "+p+"/Groups", h.createGroup)
	mux.HandleFunc("GET "+p+"/Groups/{id}", h.getGroup)
	mux.HandleFunc("PUT "+p+"/Groups/{id}", h.replaceGroup)
	mux.HandleFunc("PATCH "+p+"/Groups/{id}", h.patchGroup)
	mux.HandleFunc("DELETE "+p+"/Groups/{id}", h.deleteGroup)
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no SCIM endpoint %s %s", r.Method, r.URL.Path))
	})
	return h.authenticate(mux)
}

type handler struct {
	dir        Directory
	tenantFrom func(*http.Request) string
	prefix     string
	log        *slog.Logger
}

type tenantKey struct{}

func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := h.tenantFrom(r)
		if t == "" {
			writeError(w, http.StatusUnauthorized, "", "a SCIM bearer token is required")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, t)))
	})
}

func tenant(r *http.Request) string { s, _ := r.Context().Value(tenantKey{}).(string); return s }

// --- JSON forms -----------------------------------------------------------

type meta struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	Location     string `json:"location,omitempty"`
}

type name struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
	Formatted  string `json:"formatted,omitempty"`
}

type email struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

type userJSON struct {
	Schemas     []string  `json:"schemas"`
	ID          string    `json:"id,omitempty"`
	ExternalID  string    `json:"externalId,omitempty"`
	UserName    string    `json:"userName"`
	Name        *name     `json:"name,omitempty"`
	DisplayName string    `json:"displayName,omitempty"`
	Emails      []email   `json:"emails,omitempty"`
	Active      *flexBool `json:"active,omitempty"`
	Groups      []Member  `json:"groups,omitempty"`
	Meta        *meta     `json:"meta,omitempty"`
}

type groupJSON struct {
	Schemas     []string `json:"schemas"`
	ID          string   `json:"id,omitempty"`
	ExternalID  string   `json:"externalId,omitempty"`
	DisplayName string   `json:"displayName"`
	Members     []Member `json:"members"`
	Meta        *meta    `json:"meta,omitempty"`
}

// flexBool reads true/false and, as Microsoft Entra ID sends them in
// PATCH, "True"/"False".
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = flexBool(x)
		return nil
	case string:
		p, err := strconv.ParseBool(strings.ToLower(x))
		if err != nil {
			return fmt.Errorf("%q is not a boolean", x)
		}
		*b = flexBool(p)
		return nil
	}
	return fmt.Errorf("%s is not a boolean", data)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (h *handler) userOut(u User) userJSON {
	active := flexBool(u.Active)
	out := userJSON{
		Schemas: []string{SchemaUser}, ID: u.ID, ExternalID: u.ExternalID, UserName: u.UserName, DisplayName: u.DisplayName,
		Active: &active, Groups: u.Groups,
		Meta: &meta{ResourceType: "User", Created: stamp(u.Created), LastModified: stamp(u.Modified), Location: h.prefix + "/Users/" + u.ID},
	}
	if u.GivenName != "" || u.FamilyName != "" {
		out.Name = &name{GivenName: u.GivenName, FamilyName: u.FamilyName}
	}
	if u.Email != "" {
		out.Emails = []email{{Value: u.Email, Type: "work", Primary: true}}
	}
	return out
}

func (h *handler) groupOut(g Group) groupJSON {
	members := g.Members
	if members == nil {
		members = []Member{}
	}
	return groupJSON{Schemas: []string{SchemaGroup}, ID: g.ID, ExternalID: g.ExternalID, DisplayName: g.DisplayName, Members: members,
		Meta: &meta{ResourceType: "Group", Created: stamp(g.Created), LastModified: stamp(g.Modified), Location: h.prefix + "/Groups/" + g.ID}}
}

// userIn checks and converts a user resource from the IdP.
func userIn(in userJSON) (User, error) {
	u := User{ExternalID: in.ExternalID, UserName: strings.TrimSpace(in.UserName), DisplayName: in.DisplayName, Active: true}
	if u.UserName == "" {
		return User{}, errors.New("userName is required")
	}
	if len(u.UserName) > 256 || len(u.DisplayName) > 256 || len(u.ExternalID) > 256 {
		return User{}, errors.New("userName, displayName and externalId are at most 256 bytes")
	}
	if in.Name != nil {
		u.GivenName, u.FamilyName = in.Name.GivenName, in.Name.FamilyName
	}
	for _, e := range in.Emails {
		if e.Primary || u.Email == "" {
			u.Email = e.Value
		}
	}
	if in.Active != nil {
		u.Active = bool(*in.Active)
	}
	return u, nil
}

// --- handlers -------------------------------------------------------------

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) {
	f, offset, count, ok := listParams(w, r, map[string]string{"username": "userName", "externalid": "externalId", "emails.value": "emails.value", "emails": "emails.value", "displayname": "displayName"})
	if !ok {
		return
	}
	users, total, err := h.dir.ListUsers(r.Context(), tenant(r), f, offset, count)
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	res := make([]any, 0, len(users))
	for _, u := range users {
		res = append(res, h.userOut(u))
	}
	writeList(w, res, total, offset)
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request) {
	var in userJSON
	if !readJSON(w, r, &in) {
		return
	}
	u, err := userIn(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalidValue", err.Error())
		return
	}
	u, err = h.dir.CreateUser(r.Context(), tenant(r), u)
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, h.userOut(u))
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := h.dir.GetUser(r.Context(), tenant(r), r.PathValue("id"))
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.userOut(u))
}

func (h *handler) replaceUser(w http.ResponseWriter, r *http.Request) {
	var in userJSON
	if !readJSON(w, r, &in) {
		return
	}
	u, err := userIn(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalidValue", err.Error())
		return
	}
	u.ID = r.PathValue("id")
	u, err = h.dir.ReplaceUser(r.Context(), tenant(r), u)
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.userOut(u))
}

func (h *handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	if err := h.dir.DeleteUser(r.Context(), tenant(r), r.PathValue("id")); err != nil {
		h.writeDirError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) listGroups(w http.ResponseWriter, r *http.Request) {
	f, offset, count, ok := listParams(w, r, map[string]string{"displayname": "displayName", "externalid": "externalId"})
	if !ok {
		return
	}
	groups, total, err := h.dir.ListGroups(r.Context(), tenant(r), f, offset, count)
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	res := make([]any, 0, len(groups))
	excludeMembers := strings.EqualFold(r.URL.Query().Get("excludedAttributes"), "members")
	for _, g := range groups {
		out := h.groupOut(g)
		if excludeMembers {
			out.Members = nil
		}
		res = append(res, out)
	}
	writeList(w, res, total, offset)
}

func (h *handler) createGroup(w http.ResponseWriter, r *http.Request) {
	var in groupJSON
	if !readJSON(w, r, &in) {
		return
	}
	if strings.TrimSpace(in.DisplayName) == "" || len(in.DisplayName) > 256 {
		writeError(w, http.StatusBadRequest, "invalidValue", "displayName is required, at most 256 bytes")
		return
	}
	g, err := h.dir.CreateGroup(r.Context(), tenant(r), Group{ExternalID: in.ExternalID, DisplayName: in.DisplayName, Members: in.Members})
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, h.groupOut(g))
}

func (h *handler) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := h.dir.GetGroup(r.Context(), tenant(r), r.PathValue("id"))
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.groupOut(g))
}

func (h *handler) replaceGroup(w http.ResponseWriter, r *http.Request) {
	var in groupJSON
	if !readJSON(w, r, &in) {
		return
	}
	if strings.TrimSpace(in.DisplayName) == "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "displayName is required")
		return
	}
	g, err := h.dir.ReplaceGroup(r.Context(), tenant(r), Group{ID: r.PathValue("id"), ExternalID: in.ExternalID, DisplayName: in.DisplayName, Members: in.Members})
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.groupOut(g))
}

func (h *handler) deleteGroup(w http.ResponseWriter, r *http.Request) {
	if err := h.dir.DeleteGroup(r.Context(), tenant(r), r.PathValue("id")); err != nil {
		h.writeDirError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- discovery ------------------------------------------------------------

func (h *handler) spConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":               []string{SchemaSPConfig},
		"patch":                 map[string]bool{"supported": true},
		"bulk":                  map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":                map[string]any{"supported": true, "maxResults": MaxPage},
		"changePassword":        map[string]bool{"supported": false},
		"sort":                  map[string]bool{"supported": false},
		"etag":                  map[string]bool{"supported": false},
		"authenticationSchemes": []map[string]any{{"type": "oauthbearertoken", "name": "Bearer token", "description": "The tenant's SCIM token", "primary": true}},
		"meta":                  meta{ResourceType: "ServiceProviderConfig", Location: h.prefix + "/ServiceProviderConfig"},
	})
}

func (h *handler) resourceTypes(w http.ResponseWriter, r *http.Request) {
	types := []any{
		map[string]any{"schemas": []string{SchemaResourceTyp}, "id": "User", "name": "User", "endpoint": "/Users", "schema": SchemaUser},
		map[string]any{"schemas": []string{SchemaResourceTyp}, "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": SchemaGroup},
	}
	writeList(w, types, len(types), 0)
}

func (h *handler) schemas(w http.ResponseWriter, r *http.Request) {
	attr := func(n, typ string, required bool) map[string]any {
		return map[string]any{"name": n, "type": typ, "multiValued": false, "required": required, "mutability": "readWrite", "returned": "default"}
	}
	s := []any{
		map[string]any{"id": SchemaUser, "name": "User", "attributes": []any{attr("userName", "string", true), attr("displayName", "string", false),
			attr("externalId", "string", false), attr("active", "boolean", false), attr("name", "complex", false), attr("emails", "complex", false)}},
		map[string]any{"id": SchemaGroup, "name": "Group", "attributes": []any{attr("displayName", "string", true), attr("members", "complex", false)}},
	}
	writeList(w, s, len(s), 0)
}

// --- helpers --------------------------------------------------------------

// listParams reads filter, startIndex (1-based) and count. attrs maps the
// lower-cased attributes the filter may name to their canonical names.
func listParams(w http.ResponseWriter, r *http.Request, attrs map[string]string) (Filter, int, int, bool) {
	q := r.URL.Query()
	var f Filter
	if raw := q.Get("filter"); raw != "" {
		var err error
		if f, err = parseFilter(raw, attrs); err != nil {
			writeError(w, http.StatusBadRequest, "invalidFilter", err.Error())
			return Filter{}, 0, 0, false
		}
	}
	start, count := 1, MaxPage
	if v := q.Get("startIndex"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("startIndex %q is not a number", v))
			return Filter{}, 0, 0, false
		}
		start = max(n, 1) // RFC 7644 3.4.2.4: less than 1 is 1
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("count %q is not a number", v))
			return Filter{}, 0, 0, false
		}
		count = min(max(n, 0), MaxPage)
	}
	return f, start - 1, count, true
}

// parseFilter reads `attr eq "value"`, the only filter identity providers
// send for provisioning; anything else is refused as unsupported.
func parseFilter(raw string, attrs map[string]string) (Filter, error) {
	s := strings.TrimSpace(raw)
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return Filter{}, fmt.Errorf("filter %q: want attribute eq \"value\"", raw)
	}
	attr, rest := s[:i], strings.TrimSpace(s[i+1:])
	canon, ok := attrs[strings.ToLower(attr)]
	if !ok {
		return Filter{}, fmt.Errorf("filter %q: attribute %q cannot be filtered on", raw, attr)
	}
	j := strings.IndexByte(rest, ' ')
	if j < 0 || !strings.EqualFold(rest[:j], "eq") {
		return Filter{}, fmt.Errorf("filter %q: only the eq operator is supported", raw)
	}
	val := strings.TrimSpace(rest[j+1:])
	var v string
	if err := json.Unmarshal([]byte(val), &v); err != nil {
		return Filter{}, fmt.Errorf("filter %q: the value must be a quoted string", raw)
	}
	return Filter{Attr: canon, Value: v}, nil
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "request body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeList(w http.ResponseWriter, res []any, total, offset int) {
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas": []string{SchemaList}, "totalResults": total, "startIndex": offset + 1, "itemsPerPage": len(res), "Resources": res,
	})
}

func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{"schemas": []string{SchemaError}, "status": strconv.Itoa(status), "detail": detail}
	if scimType != "" {
		body["scimType"] = scimType
	}
	writeJSON(w, status, body)
}

func (h *handler) writeDirError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "", err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "uniqueness", err.Error())
	default:
		h.log.Error("scim: directory failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "", "the directory failed; see the control plane's log")
	}
}
