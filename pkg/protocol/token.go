package protocol

import "time"

// Role is what an admin token may do.
type Role string

// Roles, each allowed what the one before it is.
const (
	// RoleReadOnly may read devices, advisories, CVEs and the summary.
	RoleReadOnly Role = "read-only"
	// RoleOperator may also import advisories and create enrolment tokens.
	RoleOperator Role = "operator"
	// RoleAdmin may also create, list and revoke admin tokens.
	RoleAdmin Role = "admin"
)

// Allows reports whether a token of role r may do what role need may.
// Unknown roles allow nothing.
func (r Role) Allows(need Role) bool {
	rank := func(r Role) int {
		switch r {
		case RoleReadOnly:
			return 1
		case RoleOperator:
			return 2
		case RoleAdmin:
			return 3
		}
		return 0
	}
	return rank(r) > 0 && rank(r) >= rank(need)
}

// TokenCreateRequest asks for a new admin token.
type TokenCreateRequest struct {
	// Name says who or what holds the token ("ci", "alice").
	Name string `json:"name"`
	// Role is the token's role.
	Role Role `json:"role"`
}

// TokenCreateResponse carries a new admin token.
type TokenCreateResponse struct {
	// ID names the token in lists and for revocation; it is not secret.
	ID string `json:"id"`
	// Token is the secret, shown this once; the server keeps only its
	// SHA-256.
	Token string `json:"token"`
}

// TokenInfo describes an admin token without its secret.
type TokenInfo struct {
	// ID names the token.
	ID string `json:"id"`
	// Name says who holds it.
	Name string `json:"name"`
	// Role is its role.
	Role Role `json:"role"`
	// Created is when it was made.
	Created time.Time `json:"created"`
	// Revoked is when it was revoked; nil while it is valid.
	Revoked *time.Time `json:"revoked,omitempty"`
}

// EnrollTokenCreateRequest asks for a new enrolment token.
type EnrollTokenCreateRequest struct {
	// Labels are given to every device enrolled with the token; see
	// ValidateLabels for what they may hold.
	Labels map[string]string `json:"labels,omitempty"`
	// Expires is when the token stops working; the server applies a
	// default (24 h) when zero. It must lie in the future and at most
	// MaxEnrollTokenTTL ahead.
	Expires time.Time `json:"expires,omitempty"`
	// Uses is how many devices may enrol with it, at most
	// MaxEnrollTokenUses; 0 means 1.
	Uses int `json:"uses,omitempty"`
}

// Bounds of an enrolment token, checked when it is created.
const (
	// MaxEnrollTokenUses bounds EnrollTokenCreateRequest.Uses.
	MaxEnrollTokenUses = 10000
	// MaxEnrollTokenTTL bounds how far ahead a token may expire: a year.
	MaxEnrollTokenTTL = 366 * 24 * time.Hour
)

// EnrollTokenCreateResponse carries a new enrolment token.
type EnrollTokenCreateResponse struct {
	// ID names the token; it is not secret.
	ID string `json:"id"`
	// Token is the secret, shown this once.
	Token string `json:"token"`
	// Expires is when it stops working.
	Expires time.Time `json:"expires"`
	// Uses is how many enrolments it allows.
	Uses int `json:"uses"`
}
