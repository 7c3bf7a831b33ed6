package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// Admin is what the simulator asks of a server as an admin: enrolment
// tokens, imports, CVE questions.
type Admin struct {
	// URL is the server's API base URL; Token an admin token.
	URL, Token string
	// HTTP is the client; http.DefaultClient when nil.
	HTTP *http.Client
}

func (a Admin) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// EnrollToken makes an enrolment token good for uses enrolments.
func (a Admin) EnrollToken(ctx context.Context, uses int) (string, error) {
	b, _ := json.Marshal(protocol.EnrollTokenCreateRequest{Uses: uses})
	var r protocol.EnrollTokenCreateResponse
	if err := a.do(ctx, http.MethodPost, protocol.PathEnrollTokens, "application/json", bytes.NewReader(b), &r); err != nil {
		return "", err
	}
	return r.Token, nil
}

// Import uploads an advisory file (OSV JSON lines, maybe compressed, or an
// updateinfo.xml).
func (a Admin) Import(ctx context.Context, file []byte) (protocol.ImportResponse, error) {
	var r protocol.ImportResponse
	err := a.do(ctx, http.MethodPost, protocol.PathImport, "application/octet-stream", bytes.NewReader(file), &r)
	return r, err
}

// CVE asks which devices are exposed to id: the whole answer when limit
// is 0, else its first page of limit devices.
func (a Admin) CVE(ctx context.Context, id string, limit int) (protocol.CVEResponse, error) {
	var r protocol.CVEResponse
	q := ""
	if limit > 0 {
		q = "?limit=" + strconv.Itoa(limit)
	}
	err := a.do(ctx, http.MethodGet, protocol.PathCVE+id+q, "", nil, &r)
	return r, err
}
