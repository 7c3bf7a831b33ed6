package protocol

import "time"

// The bodies of the lifecycle endpoints: revoking a device
// (PathDevice+NAME+PathRevokeSuffix), and listing and revoking enrolment
// tokens (PathEnrollTokens). Deleting a device (DELETE PathDevice+NAME) and
// revoking a token answer 204 with no body.

// DeviceRevokeResponse answers a device's revocation.
type DeviceRevokeResponse struct {
	// DeviceID is the revoked device's id.
	DeviceID string `json:"device_id"`
	// Name is its name, which stays taken while the device is listed.
	Name string `json:"name"`
	// Revoked is when it was revoked; revoking it again keeps the first
	// time.
	Revoked time.Time `json:"revoked"`
}

// EnrollTokenInfo describes an enrolment token without its secret.
type EnrollTokenInfo struct {
	// ID names the token.
	ID string `json:"id"`
	// Labels are given to every device enrolled with it.
	Labels map[string]string `json:"labels,omitempty"`
	// UsesLeft is how many more devices may enrol with it; 0 once used up
	// or revoked.
	UsesLeft int `json:"uses_left"`
	// Expires is when it stops working.
	Expires time.Time `json:"expires"`
	// Created is when it was made.
	Created time.Time `json:"created"`
	// Revoked is when it was revoked; nil unless it was.
	Revoked *time.Time `json:"revoked,omitempty"`
}
