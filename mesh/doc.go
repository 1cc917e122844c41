// Package mesh makes the nodes of one LAN site each other's distribution
// points, so that each chunk crosses the WAN about once per site.
//
// It knows nothing of manifests or releases: it moves chunks named by CIDv1
// (raw codec, sha2-256) between the members of a site and, for the chunks a
// node owns, from that node's own WAN sources.
//
// # Site
//
// The set of nodes sharing one site key. Membership is hashicorp/memberlist
// gossip encrypted with the key (AES-GCM); a node without the key cannot join,
// and because the libp2p connection gater admits only the peer ids announced
// through that gossip, it cannot fetch chunks either.
//
// # Member
//
// A node of the site as gossiped: its memberlist name, its libp2p peer id and
// addresses, its role ("" or "dp") and the release sequence it holds
// completely. These travel in memberlist node metadata, capped at 512 bytes.
//
// # Owner
//
// The one live member that fetches a chunk from the WAN for the whole site,
// picked by rendezvous (highest-random-weight) hashing of the CID and member
// names over live members, or only over distribution points ("dp") when any
// is live. Removing a member moves only the chunks it owned; when an owner
// dies or fails, the next member by the same order takes over.
//
// # Chunk protocol
//
// /patchmesh/chunk/2 over libp2p: a stream carries one request at a time
// (CID and a flag telling the peer whether it should fetch from its WAN if it
// lacks the chunk) and its response (status, an encoding byte, raw or zstd,
// and at most chunk.MaxSize bytes of the chunk in that form, as the server
// stores it), then the next; the requester keeps a few idle streams per peer
// (see streams.go). The requester decodes (capped at chunk.MaxSize) and
// verifies every chunk against its CID before storing it, compressed as it
// came; a peer that sends bad bytes is penalized for a while. Version 1 moved
// raw bytes only: peers of the two versions do not talk.
//
// # Lifecycle
//
// New binds nothing. Listen binds the libp2p host's addresses and the gossip
// port (TCP and UDP), so a node can bind all its ports before it starts any
// part, and a taken one fails it at once. Run(ctx) creates the memberlist
// on the bound gossip port, joins and serves until ctx ends, then leaves
// (bounded) and closes every port before it returns; it binds the ports
// itself if Listen was not called. Close releases what Listen bound when
// Run never runs.
//
// # Delegate
//
// The one seam to the node, as memberlist takes one Delegate: Config.Delegate
// is everything the mesh needs of the node that runs it (its WAN as a chunk's
// owner, its documents and objects for peers, and what to tell it of stored
// chunks and bad peers). New takes that config and the chunk store; the node
// tells the mesh what to gossip by calling it (SetHolding, SetStatus,
// SetSummary), and the mesh holds no other pointer to it. Where a chunk's
// bytes came from is a chunk.Origin, the type the node's pipeline uses too.
//
// # Verification
//
// A chunk is verified once, where it arrives: the mesh checks what a peer
// sends against its CID before storing it (and penalizes a peer that lies);
// the Delegate's FetchChunk returns WAN bytes already verified; both are
// stored with PutVerifiedWire, which does not hash again. The store checks
// every read, so what the mesh serves or returns from the store needs no
// other check.
//
// # Counters
//
// Stats count what moves through the mesh: LAN bytes received and served,
// in wire form, per peer too (Members). WAN bytes are counted by the
// Delegate, which moves them.
//
// # WAN share
//
// A node fetches at most its share of the site's WAN requests at once
// (Config.SiteWANRequests, 32 by default, shared by the members that may own
// chunks: the live distribution points if any; Config.WANConcurrency fixes
// it), since every owner fetching at once already fills a thin link. It asks one
// peer for up to that share at once, so its requests keep an owner's share
// busy. A member alone may go up to Config.Concurrency.
//
// Far from the sources behind a fast link, round trips, not the link, cap
// the share. An owner doubles its share while its WAN fetches take about as
// long as the quickest, up to its share of Config.SiteWANRequestsMax: a full
// link queues and slows every fetch through it, a signal every member sees
// (wanWindow).
package mesh
