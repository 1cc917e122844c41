package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

func newTrustCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Create, rotate and show trust roots (the keys nodes accept)",
		Long: `A trust root lists the public keys allowed to sign releases and how many of them
must sign (the threshold). Nodes pin it in their config (--trust). A new trust root is
accepted only when signed by a threshold of the old keys and of its own: that is key
rotation. With --repo the root is also written to the repository (roots/<n>.json and
root.json), where nodes find rotations by themselves.`,
	}
	cmd.AddCommand(newTrustInitCmd(a), newTrustRotateCmd(a), newTrustShowCmd(a))
	return cmd
}

// keyFlags are the key inputs shared by trust init and rotate.
type keyFlags struct {
	keyFiles  []string
	pubs      []string
	threshold int
	out       string
	repoDir   string
}

func (k *keyFlags) signers() ([]manifest.PrivateKey, error) { return loadKeys(k.keyFiles) }

// loadKeys reads private key files; an unreadable one is a usage error.
func loadKeys(files []string) ([]manifest.PrivateKey, error) {
	var out []manifest.PrivateKey
	for _, f := range files {
		key, err := manifest.LoadKey(f)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		out = append(out, key)
	}
	return out, nil
}

func parsePubs(pubs []string) ([]manifest.PublicKey, error) {
	var out []manifest.PublicKey
	for _, s := range pubs {
		var p manifest.PublicKey
		if err := p.UnmarshalText([]byte(s)); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("public key %q: %w", s, err))
		}
		out = append(out, p)
	}
	return out, nil
}

func writeRoot(a *app, r *manifest.TrustRoot, env []byte, out, repoDir string) error {
	if out != "" {
		if err := repo.WriteFileAtomic(out, env, 0o644); err != nil {
			return err
		}
	}
	if repoDir != "" {
		if err := repo.WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(repo.RootPath(r.Version))), env, 0o644); err != nil {
			return err
		}
		if err := repo.WriteFileAtomic(filepath.Join(repoDir, repo.RootFile), env, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stdout, "trust root version %d: %d key(s), threshold %d", r.Version, len(r.Keys), r.Threshold)
	if out != "" {
		fmt.Fprintf(a.stdout, ", written to %s", out)
	}
	if repoDir != "" {
		fmt.Fprintf(a.stdout, ", published in %s", repoDir)
	}
	fmt.Fprintln(a.stdout)
	return nil
}

func newTrustInitCmd(a *app) *cobra.Command {
	var k keyFlags
	cmd := &cobra.Command{
		Use:   "init --key FILE [--pub KEY] --out trust.json",
		Short: "Create the first trust root",
		Long: `init creates trust root version 1 from the public halves of --key files and any
--pub keys ("ed25519:..." as printed by keygen), signs it with the --key files, and
writes it to --out (and to the repository with --repo).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if k.out == "" && k.repoDir == "" {
				return withCode(exitUsage, fmt.Errorf("trust init: give --out and/or --repo"))
			}
			signers, err := k.signers()
			if err != nil {
				return err
			}
			pubs, err := parsePubs(k.pubs)
			if err != nil {
				return err
			}
			for _, s := range signers {
				pubs = append(pubs, s.Public())
			}
			r, err := manifest.NewTrustRoot(k.threshold, pubs...)
			if err != nil {
				return withCode(exitUsage, err)
			}
			env, err := r.Sign(signers...)
			if err != nil {
				return err
			}
			if _, err := manifest.ParseTrustRoot(env); err != nil {
				return withCode(exitRefused, fmt.Errorf("trust init: the new root does not verify (sign it with at least %d of its keys): %w", k.threshold, err))
			}
			return writeRoot(a, r, env, k.out, k.repoDir)
		},
	}
	cmd.Flags().StringArrayVar(&k.keyFiles, "key", nil, "private key file: its public key joins the root and it signs (repeatable)")
	cmd.Flags().StringArrayVar(&k.pubs, "pub", nil, "public key (ed25519:...) that joins the root without signing (repeatable)")
	cmd.Flags().IntVar(&k.threshold, "threshold", 1, "signatures needed on every manifest, head and next root")
	cmd.Flags().StringVar(&k.out, "out", "", "file to write the trust root to")
	cmd.Flags().StringVar(&k.repoDir, "repo", "", "also publish the root in this repository folder")
	return cmd
}

func newTrustRotateCmd(a *app) *cobra.Command {
	var (
		k       keyFlags
		trust   string
		newKeys []string
		newPubs []string
	)
	cmd := &cobra.Command{
		Use:   "rotate --trust OLD --key OLDKEY --new-key NEWKEY --out NEW",
		Short: "Replace the keys of a trust root (key rotation)",
		Long: `rotate makes the next trust root version with the keys of --new-key files and
--new-pub keys. It must be signed by a threshold of the old root's keys (--key) and a
threshold of the new ones (--new-key); nodes refuse it otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(trust)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("trust rotate: %w", err))
			}
			old, err := manifest.ParseTrustRoot(data)
			if err != nil {
				return withCode(exitRefused, fmt.Errorf("trust rotate: old root %s: %w", trust, err))
			}
			signers, err := k.signers()
			if err != nil {
				return err
			}
			fresh, err := loadKeys(newKeys)
			if err != nil {
				return err
			}
			pubs, err := parsePubs(newPubs)
			if err != nil {
				return err
			}
			for _, f := range fresh {
				pubs = append(pubs, f.Public())
			}
			next, err := manifest.NewTrustRoot(k.threshold, pubs...)
			if err != nil {
				return withCode(exitUsage, err)
			}
			next.Version = old.Version + 1
			env, err := next.Sign(append(signers, fresh...)...)
			if err != nil {
				return err
			}
			if _, err := old.VerifyNext(env); err != nil {
				return withCode(exitRefused, fmt.Errorf("trust rotate: nodes would refuse the new root: %w", err))
			}
			return writeRoot(a, next, env, k.out, k.repoDir)
		},
	}
	cmd.Flags().StringVar(&trust, "trust", "", "current trust root file (required)")
	cmd.Flags().StringArrayVar(&k.keyFiles, "key", nil, "private key of the OLD root that signs the new one (repeatable)")
	cmd.Flags().StringArrayVar(&newKeys, "new-key", nil, "private key of the NEW root: joins it and signs it (repeatable)")
	cmd.Flags().StringArrayVar(&newPubs, "new-pub", nil, "public key of the NEW root that does not sign now (repeatable)")
	cmd.Flags().IntVar(&k.threshold, "threshold", 1, "threshold of the new root")
	cmd.Flags().StringVar(&k.out, "out", "", "file to write the new trust root to")
	cmd.Flags().StringVar(&k.repoDir, "repo", "", "also publish the new root in this repository folder")
	_ = cmd.MarkFlagRequired("trust")
	return cmd
}

func newTrustShowCmd(a *app) *cobra.Command {
	var (
		trust  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --trust FILE",
		Short: "Verify and print a trust root",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(trust)
			if err != nil {
				return withCode(exitUsage, err)
			}
			r, err := manifest.ParseTrustRoot(data)
			if err != nil {
				return withCode(exitRefused, fmt.Errorf("trust root %s: %w", trust, err))
			}
			if asJSON {
				return printJSON(a.stdout, r)
			}
			fmt.Fprintf(a.stdout, "trust root version %d, threshold %d\n", r.Version, r.Threshold)
			for id, k := range r.Keys {
				t, _ := k.MarshalText()
				fmt.Fprintf(a.stdout, "  %s  %s\n", id, t)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&trust, "trust", "", "trust root file (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	_ = cmd.MarkFlagRequired("trust")
	return cmd
}
