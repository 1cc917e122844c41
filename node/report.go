package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/node/api"
)

// Report bounds: one POST, its answer, the token file.
const (
	reportTimeout   = 10 * time.Second
	maxReportAnswer = 4 << 10
	maxTokenFile    = 4 << 10
)

// readReportToken reads a report token file: the token on its first line.
func readReportToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read report token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", fmt.Errorf("read report token %s: %w", path, err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("read report token %s: the file is empty", path)
	}
	return tok, nil
}

// reportLoop sends the site view to the collector every Report.Interval
// while this node is its site's elected reporter, until ctx ends.
func (n *Node) reportLoop(ctx context.Context) {
	client := &http.Client{Timeout: reportTimeout}
	t := time.NewTicker(time.Duration(n.cfg.Report.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v := n.siteView()
		if v == nil || v.Reporter != n.mesh.Name() {
			continue
		}
		if err := n.sendReport(ctx, client, v); err != nil {
			n.log.Warn("report site to the fleet collector", "url", n.cfg.Report.To, "err", err)
			continue
		}
		n.log.Debug("site reported", "url", n.cfg.Report.To, "summary", v.Summary)
	}
}

func (n *Node) sendReport(ctx context.Context, client *http.Client, v *api.SiteView) error {
	body, err := json.Marshal(api.SiteReport{Reporter: n.mesh.Name(), Sent: time.Now(), View: *v})
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.Report.To, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.reportToken)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post report: %w", err)
	}
	defer resp.Body.Close()
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, maxReportAnswer))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post report: collector answered %s: %s", resp.Status, strings.TrimSpace(string(ans)))
	}
	return nil
}
