package oidctest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ferry-ai/ferry/internal/oidctest"
)

// TestCodeFlow signs in through the provider's login form with PKCE, over
// HTTPS and plain HTTP, and checks the ID token and userinfo with
// coreos/go-oidc: issuer, audience, nonce, and the groups the test set,
// changed between two sign-ins.
func TestCodeFlow(t *testing.T) {
	for _, plain := range []bool{false, true} {
		name := "https"
		if plain {
			name = "http"
		}
		t.Run(name, func(t *testing.T) {
			const redirect = "http://127.0.0.1:1/callback"
			p := oidctest.Start(t, oidctest.Options{
				PlainHTTP: plain,
				Users:     []oidctest.User{{Username: "ada", Email: "ada@example.com", FirstName: "Ada", LastName: "L", Groups: []string{"ferry-editors"}}},
				Clients:   []oidctest.Client{{ID: "ferry", Secret: "s3cret", RedirectURIs: []string{redirect}}},
			})
			ctx := oidc.ClientContext(context.Background(), p.HTTPClient())
			prov, err := oidc.NewProvider(ctx, p.Issuer)
			if err != nil {
				t.Fatal(err)
			}
			conf := oauth2.Config{ClientID: "ferry", ClientSecret: "s3cret", Endpoint: prov.Endpoint(), RedirectURL: redirect,
				Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
			signIn := func(wantGroups []string) {
				t.Helper()
				verifier := oauth2.GenerateVerifier()
				start := conf.AuthCodeURL("state-1", oidc.Nonce("nonce-1"), oauth2.S256ChallengeOption(verifier))
				cb, err := p.Authorize(ctx, p.NewBrowser(), start, "ada")
				if err != nil {
					t.Fatal(err)
				}
				if got := cb.Query().Get("state"); got != "state-1" {
					t.Fatalf("state %q", got)
				}
				tok, err := conf.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := tok.Extra("id_token").(string)
				idt, err := prov.Verifier(&oidc.Config{ClientID: "ferry"}).Verify(ctx, raw)
				if err != nil {
					t.Fatal(err)
				}
				var claims struct {
					Groups []string `json:"groups"`
				}
				if err := idt.Claims(&claims); err != nil {
					t.Fatal(err)
				}
				if idt.Nonce != "nonce-1" || idt.Subject != p.Subject("ada") || !slices.Equal(claims.Groups, wantGroups) {
					t.Fatalf("ID token: nonce %q subject %q groups %v; want groups %v", idt.Nonce, idt.Subject, claims.Groups, wantGroups)
				}
				if _, err := prov.Verifier(&oidc.Config{ClientID: "other"}).Verify(ctx, raw); err == nil {
					t.Fatal("the ID token verified for another audience")
				}
				ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
				if err != nil {
					t.Fatal(err)
				}
				var uc struct {
					Groups []string `json:"groups"`
				}
				if err := ui.Claims(&uc); err != nil {
					t.Fatal(err)
				}
				if ui.Email != "ada@example.com" || !slices.Equal(uc.Groups, wantGroups) {
					t.Fatalf("userinfo: email %q groups %v", ui.Email, uc.Groups)
				}
			}
			signIn([]string{"ferry-editors"})
			if err := p.SetGroups("ada", "ferry-admins", "other"); err != nil {
				t.Fatal(err)
			}
			signIn([]string{"ferry-admins", "other"})
		})
	}
}

// TestAuthorizeRefusals: a wrong client secret is refused at the token
// endpoint, an unknown user cannot be driven, and an unregistered redirect
// URI never reaches the login form.
func TestAuthorizeRefusals(t *testing.T) {
	const redirect = "http://127.0.0.1:1/callback"
	p := oidctest.Start(t, oidctest.Options{
		Users:   []oidctest.User{{Username: "ada"}},
		Clients: []oidctest.Client{{ID: "ferry", Secret: "s3cret", RedirectURIs: []string{redirect}}},
	})
	ctx := oidc.ClientContext(context.Background(), p.HTTPClient())
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: "ferry", ClientSecret: "wrong", Endpoint: prov.Endpoint(), RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID}}
	cb, err := p.Authorize(ctx, p.NewBrowser(), conf.AuthCodeURL("s"), "ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.Exchange(ctx, cb.Query().Get("code")); err == nil {
		t.Fatal("a wrong client secret was accepted")
	}
	if _, err := p.Authorize(ctx, p.NewBrowser(), conf.AuthCodeURL("s"), "nobody"); err == nil {
		t.Fatal("Authorize drove an unknown user")
	}
	conf.RedirectURL = "http://127.0.0.1:2/elsewhere"
	if cb, err := p.Authorize(ctx, p.NewBrowser(), conf.AuthCodeURL("s"), "ada"); err == nil && cb.Query().Get("code") != "" {
		t.Fatalf("an unregistered redirect URI got a code: %s", cb)
	}
}
