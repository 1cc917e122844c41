package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node"
)

func newKeygenCmd(a *app) *cobra.Command {
	var (
		out    string
		site   bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create a release signing key or a site key",
		Long: `keygen writes a new Ed25519 release signing key to FILE (mode 0600) and prints its
public key and key id, which go into the trust root (see "patchmesh trust init").

With --site it writes a site key instead: the 32-byte shared secret that encrypts a
site's gossip and admits its members. Give the same file to every node of the site
(--site-key). keygen never overwrites an existing file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return withCode(exitUsage, fmt.Errorf("keygen: --out is required"))
			}
			if site {
				if err := node.GenerateSiteKey(out); err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, map[string]string{"site_key_file": out})
				}
				fmt.Fprintf(a.stdout, "site key written to %s; copy it to every node of the site (--site-key)\n", out)
				return nil
			}
			k, err := manifest.GenerateKey()
			if err != nil {
				return err
			}
			if err := manifest.SaveKey(out, k); err != nil {
				return err
			}
			pub, err := k.Public().MarshalText()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, map[string]string{"key_file": out, "key_id": string(k.Public().ID()), "public_key": string(pub)})
			}
			fmt.Fprintf(a.stdout, "private key: %s (keep it secret)\nkey id:      %s\npublic key:  %s\n", out, k.Public().ID(), pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the key to (required)")
	cmd.Flags().BoolVar(&site, "site", false, "write a site key (gossip and membership secret) instead of a signing key")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
