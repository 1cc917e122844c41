// Package repo reads and writes a patchmesh static repository: the plain tree of
// trust roots, channel heads, manifests and chunks that any web server, CDN, FTP
// server or shared folder can host.
//
// # Layout
//
//	root.json                      the newest trust root (signed envelope)
//	roots/<version>.json           every trust root, so a node can walk key rotations
//	channels/<channel>/head.json   signed channel head: points to the newest manifest
//	manifests/<channel>/<seq>.json signed manifests, never rewritten
//	chunks/<xx>/<cid>              raw chunk bytes, named by CIDv1 (raw, sha2-256);
//	                               <xx> is the two characters before the CID's last one
//
// # Publishing order
//
// Publishing only adds files: new chunks first, then one barrier (syncfs) so they
// are on disk, then the manifest, then the channel head. Each document is written
// to a temporary file, fsynced and renamed into place, so a reader sees either the
// previous release or the new one, never half of one, and a crash leaves the old
// release intact.
package repo
