package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// patchRequest is a SCIM PATCH body (RFC 7644 3.5.2).
type patchRequest struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// readPatch reads and checks a PATCH body; ops are lower-cased (Microsoft
// Entra ID sends "Replace", "Add", "Remove").
func readPatch(w http.ResponseWriter, r *http.Request) ([]patchOp, bool) {
	var p patchRequest
	if !readJSON(w, r, &p) {
		return nil, false
	}
	if len(p.Operations) == 0 {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "PATCH needs Operations")
		return nil, false
	}
	for i := range p.Operations {
		op := &p.Operations[i]
		op.Op = strings.ToLower(op.Op)
		switch op.Op {
		case "add", "replace", "remove":
		default:
			writeError(w, http.StatusBadRequest, "invalidSyntax", fmt.Sprintf("operation %d: op %q: want add, remove or replace", i+1, op.Op))
			return nil, false
		}
		if op.Op != "remove" && len(op.Value) == 0 {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("operation %d: %s needs a value", i+1, op.Op))
			return nil, false
		}
	}
	return p.Operations, true
}

func (h *handler) patchUser(w http.ResponseWriter, r *http.Request) {
	ops, ok := readPatch(w, r)
	if !ok {
		return
	}
	u, err := h.dir.GetUser(r.Context(), tenant(r), r.PathValue("id"))
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	for i, op := range ops {
		if err := applyUserOp(&u, op); err != nil {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("operation %d: %v", i+1, err))
			return
		}
	}
	if u.UserName == "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "userName cannot be removed")
		return
	}
	u, err = h.dir.ReplaceUser(r.Context(), tenant(r), u)
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.userOut(u))
}

// applyUserOp applies one operation to u. Attributes Ferry does not keep
// (title, locale, enterprise extension fields, …) are accepted and
// ignored, as identity providers send them whatever the schema says.
func applyUserOp(u *User, op patchOp) error {
	if op.Path == "" {
		if op.Op == "remove" {
			return errors.New("remove needs a path")
		}
		var attrs map[string]json.RawMessage
		if err := json.Unmarshal(op.Value, &attrs); err != nil {
			return errors.New("a value without a path must be an object of attributes")
		}
		for k, v := range attrs {
			if err := setUserAttr(u, k, v, false); err != nil {
				return err
			}
		}
		return nil
	}
	return setUserAttr(u, op.Path, op.Value, op.Op == "remove")
}

// setUserAttr sets (or, with remove, clears) one attribute by its path.
func setUserAttr(u *User, path string, v json.RawMessage, remove bool) error {
	str := func(dst *string) error {
		if remove {
			*dst = ""
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("%s: want a string", path)
		}
		return nil
	}
	p := strings.ToLower(strings.TrimPrefix(path, SchemaUser+":"))
	switch {
	case p == "active":
		if remove {
			return errors.New("active cannot be removed")
		}
		var b flexBool
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("active: %v", err)
		}
		u.Active = bool(b)
	case p == "username":
		return str(&u.UserName)
	case p == "displayname":
		return str(&u.DisplayName)
	case p == "externalid":
		return str(&u.ExternalID)
	case p == "name.givenname":
		return str(&u.GivenName)
	case p == "name.familyname":
		return str(&u.FamilyName)
	case p == "name":
		if remove {
			u.GivenName, u.FamilyName = "", ""
			return nil
		}
		var n name
		if err := json.Unmarshal(v, &n); err != nil {
			return errors.New("name: want an object")
		}
		u.GivenName, u.FamilyName = n.GivenName, n.FamilyName
	case p == "emails":
		if remove {
			u.Email = ""
			return nil
		}
		var es []email
		if err := json.Unmarshal(v, &es); err != nil {
			return errors.New("emails: want a list")
		}
		for _, e := range es {
			if e.Primary || u.Email == "" {
				u.Email = e.Value
			}
		}
	case strings.HasPrefix(p, "emails[") && strings.HasSuffix(p, "].value"):
		// emails[type eq "work"].value: Ferry keeps one address.
		return str(&u.Email)
	}
	return nil
}

func (h *handler) patchGroup(w http.ResponseWriter, r *http.Request) {
	ops, ok := readPatch(w, r)
	if !ok {
		return
	}
	g, err := h.dir.GetGroup(r.Context(), tenant(r), r.PathValue("id"))
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	for i, op := range ops {
		if err := applyGroupOp(&g, op); err != nil {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("operation %d: %v", i+1, err))
			return
		}
	}
	if strings.TrimSpace(g.DisplayName) == "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "displayName cannot be removed")
		return
	}
	g, err = h.dir.ReplaceGroup(r.Context(), tenant(r), g)
	if err != nil {
		h.writeDirError(w, err)
		return
	}
	if r.URL.Query().Get("excludedAttributes") == "members" || len(g.Members) > MaxPage {
		// Okta asks for no members back; a big group's list is not echoed.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, h.groupOut(g))
}

// applyGroupOp applies one operation to g.
func applyGroupOp(g *Group, op patchOp) error {
	members := func() ([]Member, error) {
		var ms []Member
		if err := json.Unmarshal(op.Value, &ms); err != nil {
			return nil, errors.New("members: want a list of {\"value\": id}")
		}
		for _, m := range ms {
			if m.Value == "" {
				return nil, errors.New("members: a member without a value")
			}
		}
		return ms, nil
	}
	p := strings.ToLower(op.Path)
	switch {
	case p == "":
		if op.Op == "remove" {
			return errors.New("remove needs a path")
		}
		var attrs struct {
			DisplayName *string  `json:"displayName"`
			ExternalID  *string  `json:"externalId"`
			Members     []Member `json:"members"`
		}
		if err := json.Unmarshal(op.Value, &attrs); err != nil {
			return errors.New("a value without a path must be an object of attributes")
		}
		if attrs.DisplayName != nil {
			g.DisplayName = *attrs.DisplayName
		}
		if attrs.ExternalID != nil {
			g.ExternalID = *attrs.ExternalID
		}
		if attrs.Members != nil {
			if op.Op == "add" {
				g.Members = addMembers(g.Members, attrs.Members)
			} else {
				g.Members = addMembers(nil, attrs.Members)
			}
		}
	case p == "displayname":
		if op.Op == "remove" {
			g.DisplayName = ""
			return nil
		}
		if err := json.Unmarshal(op.Value, &g.DisplayName); err != nil {
			return errors.New("displayName: want a string")
		}
	case p == "externalid":
		if op.Op == "remove" {
			g.ExternalID = ""
			return nil
		}
		if err := json.Unmarshal(op.Value, &g.ExternalID); err != nil {
			return errors.New("externalId: want a string")
		}
	case p == "members":
		switch op.Op {
		case "add":
			ms, err := members()
			if err != nil {
				return err
			}
			g.Members = addMembers(g.Members, ms)
		case "replace":
			ms, err := members()
			if err != nil {
				return err
			}
			g.Members = addMembers(nil, ms)
		case "remove":
			if len(op.Value) == 0 {
				g.Members = nil // every member
				return nil
			}
			ms, err := members()
			if err != nil {
				return err
			}
			g.Members = removeMembers(g.Members, ms)
		}
	case strings.HasPrefix(p, "members[") && strings.HasSuffix(p, "]"):
		// members[value eq "id"] (Okta's remove).
		f, err := parseFilter(op.Path[len("members["):len(op.Path)-1], map[string]string{"value": "value"})
		if err != nil {
			return err
		}
		if op.Op != "remove" {
			return fmt.Errorf("path %q: only remove takes a member filter", op.Path)
		}
		g.Members = removeMembers(g.Members, []Member{{Value: f.Value}})
	default:
		return fmt.Errorf("path %q: a group has displayName, externalId and members", op.Path)
	}
	return nil
}

func addMembers(have, add []Member) []Member {
	seen := map[string]bool{}
	out := make([]Member, 0, len(have)+len(add))
	for _, m := range append(append([]Member(nil), have...), add...) {
		if !seen[m.Value] {
			seen[m.Value] = true
			out = append(out, m)
		}
	}
	return out
}

func removeMembers(have, remove []Member) []Member {
	drop := map[string]bool{}
	for _, m := range remove {
		drop[m.Value] = true
	}
	out := have[:0:0]
	for _, m := range have {
		if !drop[m.Value] {
			out = append(out, m)
		}
	}
	return out
}
